"""The notes API: notes in PostgreSQL, a counter of posts in Redis."""
import json
import os
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import redis

PASSWORD = open("/run/secrets/db_password").read().strip()


def db():
    return psycopg2.connect(host=os.environ["DB_HOST"], user="notes", password=PASSWORD, dbname="postgres")


def cache():
    return redis.Redis(host=os.environ["REDIS_HOST"], port=6379)


def setup():
    for _ in range(60):
        try:
            with db() as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, text text NOT NULL)")
            return
        except psycopg2.OperationalError:
            time.sleep(0.5)
    raise SystemExit("no database")


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.answer(200, {"status": "ok"})
        if self.path == "/notes":
            with db() as conn, conn.cursor() as cur:
                cur.execute("SELECT text FROM notes ORDER BY id")
                notes = [r[0] for r in cur.fetchall()]
            posted = int(cache().get("posted") or 0)
            return self.answer(200, {"version": os.environ.get("NOTES_VERSION"), "notes": notes, "posted": posted})
        self.answer(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/notes":
            return self.answer(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        text = form.get("text", [""])[0]
        with db() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO notes (text) VALUES (%s)", (text,))
        cache().incr("posted")
        self.answer(201, {"added": text})


if __name__ == "__main__":
    setup()
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
