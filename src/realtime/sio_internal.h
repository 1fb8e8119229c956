/*
 * sio_internal.h - the Socket.IO server's state, shared by sio_server.c (the
 * protocol, on the realtime thread) and mount.c (the HTTP entry points, on
 * worker threads). Nothing outside src/realtime/ includes this.
 *
 * Threads: fields set at registration are read-only once mounted; the maps
 * and sockets belong to the loop thread; `upgrades` is guarded by
 * upgrades_lock; socket_count is atomic.
 */
#ifndef ECHO_REALTIME_SIO_INTERNAL_H
#define ECHO_REALTIME_SIO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "realtime/eio.h"
#include "realtime/loop.h"
#include "realtime/realtime.h"

struct sio_handler {
    char *name;
    sio_event_fn fn;
    void *ud;
};

/* A chained hash map from 64-bit keys to pointers (loop thread only). */
struct u64_node {
    struct u64_node *next;
    uint64_t key;
    void *value;
};
struct u64_map {
    struct u64_node **buckets;
    size_t nbuckets, count;
};

/* The context of one WebSocket handshake between the 101 and the hand-over.
 * Kept on a list so that one whose hand-over never comes (the client left
 * before the 101 went out: http then never calls back) is freed at shutdown. */
struct sio_upgrade {
    struct sio_upgrade *prev, *next;
    sio_server *srv;
    char sid[EIO_SID_LEN + 1]; /* "" for a WebSocket-only handshake */
    int64_t user_id;
};

struct sio_server {
    rt_loop *loop;
    eio_server *eio;
    struct sio_options opt;
    char *site_origin, *default_origin;
    bool stopped;

    sio_auth_fn auth;
    void *auth_ud;
    struct sio_handler *handlers;
    size_t nhandlers;
    sio_connect_fn on_connect;
    void *connect_ud;
    sio_disconnect_fn on_disconnect;
    void *disconnect_ud;

    uint64_t next_handle;
    struct u64_map by_handle; /* handle -> sio_socket */
    struct u64_map by_user;   /* user id -> first connected sio_socket */
    atomic_size_t socket_count;

    pthread_mutex_t upgrades_lock;
    struct sio_upgrade *upgrades;
};

#endif
