"""test_db_crash.py - kill -9 during a burst of writes loses no committed row.

Several `echobot db seed --batch 1` processes (one commit per row, each
reported on stdout after COMMIT returned) and a loop of `echobot user
create` run against one database at once, so they also contend for the
write lock. All are killed with SIGKILL mid-burst. Afterwards every row a
process reported as committed is there, and PRAGMA integrity_check and
foreign_key_check pass (checked by `echobot db check` and by Python's own
sqlite3).
"""
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

ECHOBOT = os.environ.get("ECHOBOT", "build/test/src/app/echobot")


def env_for(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_") and k != "SECRET_KEY"}
    e["ECHO_INSTANCE_DIR"] = str(tmp_path / "instance")
    e["ECHO_LOG_LEVEL"] = "warn"
    return e


def reader(proc, lines):
    for line in proc.stdout:
        lines.append(line)


def test_kill_during_burst_loses_no_committed_row(tmp_path):
    env = env_for(tmp_path)
    subprocess.run([ECHOBOT, "db", "upgrade"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    seeders = []
    for i in range(3):
        p = subprocess.Popen([ECHOBOT, "db", "seed", "--users", "100000", "--messages", "0",
                              "--batch", "1", "--prefix", f"crash{i}_"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        lines = []
        t = threading.Thread(target=reader, args=(p, lines), daemon=True)
        t.start()
        seeders.append((p, lines, t))

    created = []  # usernames whose `user create` reported success
    stop = threading.Event()
    current = {}

    def creator():
        n = 0
        while not stop.is_set():
            name = f"made{n}"
            p = subprocess.Popen([ECHOBOT, "user", "create", "--username", name, "--email",
                                  f"{name}@example.com"], cwd=tmp_path, env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            current["p"] = p
            out, _ = p.communicate("password123\n")
            if p.returncode == 0 and "created user" in out:
                created.append(name)
            n += 1

    ct = threading.Thread(target=creator, daemon=True)
    ct.start()
    time.sleep(3.0)
    stop.set()
    for p, _, _ in seeders:
        p.send_signal(signal.SIGKILL)
    cp = current.get("p")
    if cp and cp.poll() is None:
        cp.send_signal(signal.SIGKILL)
    ct.join(timeout=60)
    for p, _, t in seeders:
        p.wait(timeout=30)
        t.join(timeout=30)
        assert p.returncode == -signal.SIGKILL, p.stderr.read()

    con = sqlite3.connect(tmp_path / "instance" / "echo.db")
    try:
        total_reported = 0
        for i, (_, lines, _) in enumerate(seeders):
            reported = 0
            for line in lines:
                m = re.match(r"committed users=(\d+)", line)
                if m:
                    reported = int(m.group(1))
            have = con.execute("SELECT count(*) FROM users WHERE username GLOB ?",
                               (f"crash{i}_*",)).fetchone()[0]
            # Every reported commit is there; at most the one in flight more.
            assert reported <= have <= reported + 1, (i, reported, have)
            total_reported += reported
        assert total_reported > 20, "the burst was too short to mean anything"
        for name in created:
            assert con.execute("SELECT count(*) FROM users WHERE username = ?",
                               (name,)).fetchone()[0] == 1, name
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()
    p = subprocess.run([ECHOBOT, "db", "check"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "integrity ok" in p.stdout
    print(f"\ncommitted before the kill: {total_reported} seeded users, "
          f"{len(created)} users created by `user create`")
