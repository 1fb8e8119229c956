"""test_db_cli.py - `echobot db` and `echobot user` through the real binary.

Migrations (status, upgrade, re-run, checksum drift, unknown version,
refusal without auto-migration), accounts (create with the password on
stdin, case-insensitive duplicates, the username/email/password rules,
--admin, list, set-password revoking sessions), the hidden password prompt
on a terminal, and values full of SQL metacharacters stored verbatim.
"""
import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import time

import pytest

ECHOBOT = os.environ.get("ECHOBOT", "build/test/src/app/echobot")


# The migration files, in order (the binary embeds the same list).
MIGRATIONS = sorted(f for f in os.listdir(os.path.join(
    os.environ.get("ECHO_SOURCE_DIR", "."), "migrations")) if f.endswith(".sql"))

def run(tmp_path, *args, stdin=None, env=None, check=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_") and k != "SECRET_KEY"}
    e["ECHO_INSTANCE_DIR"] = str(tmp_path / "instance")
    e["ECHO_LOG_LEVEL"] = "warn"
    if env:
        e.update(env)
    p = subprocess.run([ECHOBOT, *args], input=stdin, capture_output=True, text=True,
                       cwd=tmp_path, env=e, timeout=120)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def dbfile(tmp_path):
    return tmp_path / "instance" / "echo.db"


def sql(tmp_path, query, args=()):
    con = sqlite3.connect(dbfile(tmp_path))
    try:
        cur = con.execute(query, args)
        rows = cur.fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def test_help(tmp_path):
    for cmd in (["db", "--help"], ["user", "--help"], ["db", "status", "--help"]):
        p = run(tmp_path, *cmd, check=0)
        assert p.stdout.startswith("usage: echobot")
    p = run(tmp_path, "db", check=2)
    assert "usage" in p.stderr
    p = run(tmp_path, "db", "frobnicate", check=2)
    assert "unknown action" in p.stderr
    p = run(tmp_path, "user", "create", "--bogus", check=2)
    assert "unknown" in p.stderr
    p = run(tmp_path, "db", "seed", "--users", "abc", check=2)
    assert "number" in p.stderr


def test_status_upgrade_rerun(tmp_path):
    p = run(tmp_path, "db", "status", check=0)
    assert "001_init.sql" in p.stdout and "pending" in p.stdout
    assert "does not exist yet" in p.stdout
    assert not dbfile(tmp_path).exists()  # looking creates nothing
    p = run(tmp_path, "db", "upgrade", check=0)
    n = len(MIGRATIONS)
    assert f"applied {n} migration{'s' if n > 1 else ''}" in p.stdout
    p = run(tmp_path, "db", "status", check=0)
    assert "001_init.sql" in p.stdout and "applied 20" in p.stdout
    assert "0 pending" in p.stdout
    p = run(tmp_path, "db", "upgrade", check=0)
    assert "up to date" in p.stdout
    rows = sql(tmp_path, "SELECT version, name, length(checksum) FROM schema_migrations")
    assert rows == [(int(m[:3]), m, 64) for m in MIGRATIONS]
    assert sql(tmp_path, "PRAGMA journal_mode")[0][0] == "wal"
    run(tmp_path, "db", "check", check=0)


def test_explicit_database_path(tmp_path):
    other = tmp_path / "elsewhere.db"
    run(tmp_path, "db", "upgrade", "--database", str(other), check=0)
    assert other.exists()
    assert not dbfile(tmp_path).exists()
    p = run(tmp_path, "user", "create", "--username", "pat", "--email", "pat@example.com",
            "--database", str(other), stdin="password123\n", check=0)
    assert "created user pat" in p.stdout
    p = run(tmp_path, "db", "upgrade", env={"ECHO_DATABASE": str(tmp_path / "nodir" / "x.db")},
            check=1)
    assert "cannot open database" in p.stderr


def test_checksum_drift_and_unknown_version(tmp_path):
    run(tmp_path, "db", "upgrade", check=0)
    sql(tmp_path, "UPDATE schema_migrations SET checksum = 'ab' || substr(checksum, 3)")
    p = run(tmp_path, "db", "status", check=1)
    assert "CHANGED" in p.stdout
    p = run(tmp_path, "db", "upgrade", check=1)
    assert "001_init.sql was changed" in p.stderr
    p = run(tmp_path, "user", "list", check=1)
    assert "changed" in p.stderr
    sql(tmp_path, "DELETE FROM schema_migrations")
    sql(tmp_path, "INSERT INTO schema_migrations VALUES (1, '001_init.sql', 1, ?)",
        (_embedded_checksum(),))
    run(tmp_path, "db", "status", check=0)
    sql(tmp_path, "INSERT INTO schema_migrations VALUES (999, '999_future.sql', 1, 'x')")
    p = run(tmp_path, "db", "status", check=1)
    assert "999_future.sql" in p.stdout and "UNKNOWN" in p.stdout
    p = run(tmp_path, "db", "upgrade", check=1)
    assert "newer" in p.stderr


def _embedded_checksum():
    import hashlib
    root = os.environ.get("ECHO_SOURCE_DIR", os.getcwd())
    with open(os.path.join(root, "migrations", "001_init.sql"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_auto_migrate_setting(tmp_path):
    # Without auto-migration a command on a database that is behind refuses.
    p = run(tmp_path, "user", "list", env={"ECHO_AUTO_MIGRATE": "0"}, check=1)
    assert "db upgrade" in p.stderr
    # In development the default is to upgrade.
    p = run(tmp_path, "user", "list", check=0)
    assert "0 users" in p.stdout
    assert sql(tmp_path, "SELECT count(*) FROM schema_migrations")[0][0] == len(MIGRATIONS)


def create(tmp_path, username, email, password="password123", *extra, check=0):
    return run(tmp_path, "user", "create", "--username", username, "--email", email, *extra,
               stdin=password + "\n", check=check)


def test_user_create_and_list(tmp_path):
    p = create(tmp_path, "Alice", "Alice@Example.com", "correct horse", "--admin")
    assert "created user Alice" in p.stdout and "admin" in p.stdout
    create(tmp_path, "bob", "bob@example.com")
    p = run(tmp_path, "user", "list", "--json", check=0)
    users = json.loads(p.stdout)
    assert [u["username"] for u in users] == ["Alice", "bob"]
    assert users[0]["roles"] == ["admin"] and users[1]["roles"] == []
    assert "password_hash" not in p.stdout and "argon2" not in p.stdout
    p = run(tmp_path, "user", "list", check=0)
    assert "Alice" in p.stdout and "2 users" in p.stdout
    hashes = sql(tmp_path, "SELECT password_hash FROM users ORDER BY id")
    assert all(h[0].startswith("$argon2id$") for h in hashes)
    assert "correct horse" not in open(dbfile(tmp_path), "rb").read().decode("latin-1")


def test_user_duplicates_case_insensitive(tmp_path):
    create(tmp_path, "Carol", "carol@example.com")
    p = create(tmp_path, "cAROL", "other@example.com", check=1)
    assert "username 'cAROL' is already taken" in p.stderr
    p = create(tmp_path, "carol2", "CAROL@EXAMPLE.COM", check=1)
    assert "email 'CAROL@EXAMPLE.COM' is already taken" in p.stderr
    assert sql(tmp_path, "SELECT count(*) FROM users")[0][0] == 1


def test_user_rules(tmp_path):
    for name in ["ab", "x" * 33, "has space", "semi;colon", "émile", "a'b"]:
        p = create(tmp_path, name, "n@example.com", check=1)
        assert "username" in p.stderr
    for email in ["plain", "a@b", "a@@b.com", "a b@c.com", "x" * 250 + "@example.com"]:
        p = create(tmp_path, "someone", email, check=1)
        assert "email" in p.stderr
    p = create(tmp_path, "someone", "s@example.com", "seven77", check=1)
    assert "8 to 128" in p.stderr
    p = create(tmp_path, "someone", "s@example.com", "x" * 129, check=1)
    assert "8 to 128" in p.stderr
    p = run(tmp_path, "user", "create", "--username", "someone", "--email", "s@example.com",
            stdin="", check=1)
    assert "password" in p.stderr
    p = run(tmp_path, "user", "create", "--username", "someone", "--email", "s@example.com",
            stdin="y" * 10000 + "\n", check=1)
    assert "password" in p.stderr
    p = run(tmp_path, "user", "create", "--username", "someone", stdin="password1\n", check=2)
    assert "required" in p.stderr
    assert sql(tmp_path, "SELECT count(*) FROM users")[0][0] == 0
    # Limits themselves are fine: 128 characters, 8 multi-byte characters.
    create(tmp_path, "longpw", "l@example.com", "x" * 128)
    create(tmp_path, "utf8pw", "u@example.com", "é" * 8)


def test_metacharacters_stored_verbatim(tmp_path):
    email = "o'brien--%_*{}|@x-y.example.com"
    create(tmp_path, "o.brien--_", email, "pass'; DROP TABLE users; --")
    assert sql(tmp_path, "SELECT username, email FROM users") == [("o.brien--_", email)]
    p = run(tmp_path, "user", "list", "--json", check=0)
    assert json.loads(p.stdout)[0]["email"] == email


def test_set_password_revokes_sessions(tmp_path):
    create(tmp_path, "dave", "dave@example.com", "first password")
    old = sql(tmp_path, "SELECT password_hash FROM users")[0][0]
    uid = sql(tmp_path, "SELECT id FROM users")[0][0]
    for i in range(2):
        sql(tmp_path, "INSERT INTO sessions (id_hash, user_id, created_at, expires_at,"
                      " last_seen_at) VALUES (randomblob(32), ?, 1, 9999999999, 1)", (uid,))
    p = run(tmp_path, "user", "set-password", "DAVE@example.com", stdin="second password\n",
            check=0)
    assert "2 sessions logged out" in p.stdout
    new = sql(tmp_path, "SELECT password_hash FROM users")[0][0]
    assert new != old and new.startswith("$argon2id$")
    assert sql(tmp_path, "SELECT count(*) FROM sessions")[0][0] == 0
    p = run(tmp_path, "user", "set-password", "nobody", stdin="second password\n", check=1)
    assert "no account" in p.stderr
    p = run(tmp_path, "user", "set-password", "dave", stdin="short\n", check=1)
    assert sql(tmp_path, "SELECT password_hash FROM users")[0][0] == new
    run(tmp_path, "user", "set-password", stdin="second password\n", check=2)


def _pty_session(tmp_path, args, answers):
    """Runs echobot with a terminal as stdin/stderr; answers each prompt in
    turn; returns (exit code, everything the terminal showed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_")}
    env["ECHO_INSTANCE_DIR"] = str(tmp_path / "instance")
    env["ECHO_LOG_LEVEL"] = "warn"
    master, slave = pty.openpty()
    proc = subprocess.Popen([ECHOBOT, *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=tmp_path, env=env, close_fds=True)
    os.close(slave)
    seen = b""
    pending = list(answers)
    deadline = time.time() + 60
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if pending and seen.count(b"password:") + seen.count(b"Password:") > len(answers) - len(pending):
            time.sleep(0.1)  # let the program switch echo off first
            os.write(master, pending.pop(0).encode() + b"\n")
        if proc.poll() is not None and not r:
            break
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, seen.decode(errors="replace")


def test_password_prompt_without_echo(tmp_path):
    run(tmp_path, "db", "upgrade", check=0)
    code, shown = _pty_session(tmp_path, ["user", "create", "--username", "erin",
                                          "--email", "erin@example.com"],
                               ["very secret words", "very secret words"])
    assert code == 0, shown
    assert "New password:" in shown and "Repeat the password:" in shown
    assert "very secret words" not in shown
    assert "created user erin" in shown
    code, shown = _pty_session(tmp_path, ["user", "set-password", "erin"],
                               ["another secret", "a different one"])
    assert code == 1
    assert "differ" in shown and "another secret" not in shown


def test_check_finds_damage(tmp_path):
    create(tmp_path, "fay", "fay@example.com")
    con = sqlite3.connect(dbfile(tmp_path))
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute("INSERT INTO feedback (user_id, content, created_at) VALUES (4242, 'x', 1)")
    con.commit()
    con.close()
    p = run(tmp_path, "db", "check", check=1)
    assert "foreign key" in p.stderr


def test_seed(tmp_path):
    p = run(tmp_path, "db", "seed", "--users", "50", "--messages", "200", "--days", "10",
            "--batch", "60", "--prefix", "demo", check=0)
    assert "seeded 50 users and 200 messages" in p.stdout
    assert sql(tmp_path, "SELECT count(*) FROM users WHERE username LIKE 'demo%'")[0][0] == 50
    assert sql(tmp_path, "SELECT count(*) FROM messages")[0][0] == 200
    span = sql(tmp_path, "SELECT max(created_at) - min(created_at) FROM users")[0][0]
    assert 8 * 86400 < span <= 10 * 86400
    assert sql(tmp_path, "SELECT count(*) FROM users WHERE password_hash IS NOT NULL")[0][0] == 0
    p = run(tmp_path, "db", "bench", "--runs", "1", check=0)
    assert "50 users, 200 messages" in p.stdout
    assert re.search(r"signups per day, 30 days +\d+\.\d+ ms", p.stdout)
    assert "argon2id hash" in p.stdout
    p = run(tmp_path, "db", "seed", "--users", "1", "--prefix", "demo", check=1)
    assert "already taken" in p.stderr
    p = run(tmp_path, "db", "seed", "--users", "5", env={"ECHO_ENV": "production",
                                                         "SECRET_KEY": "k" * 40,
                                                         "ECHO_AUTO_MIGRATE": "1"}, check=1)
    assert "production" in p.stderr
