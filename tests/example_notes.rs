//! The examples/notes application, built by stack from its Dockerfiles on a
//! Debian base made by mmdebstrap (Debian's packages, no registry), brought
//! up with every service waiting for the health of those it needs: a note
//! posted through nginx reaches PostgreSQL and Redis, and outlives a
//! `down` and `up` in its named volume (issue 22).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::{in_project, wait_for_ok, Env};

/// One HTTP/1.0 request to 127.0.0.1:`port` (once nginx listens); the
/// body of the answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut s = wait_for_ok("nginx to listen", || {
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())
    });
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(answer)
}

#[test]
fn the_notes_example_builds_comes_up_healthy_and_keeps_its_data() {
    let mut e = Env::new("example", "notes");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    e.vars.push(("NOTES_PORT".into(), port.to_string()));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/notes");
    let base = std::process::Command::new(dir.join("base.sh"))
        .arg(e.command(&[]).get_program())
        .env("STACK_ROOT", e.root())
        .output()
        .unwrap();
    assert!(base.status.success(), "{base:?}");
    let d = dir.display().to_string();
    let stack = |args: &[&str]| e.out(&in_project(&d, args));
    stack(&["up", "-d", "--wait"]);
    for s in ["web", "api", "db", "cache"] {
        e.out(&["image", "inspect", &format!("notes-{s}")]);
    }
    assert!(http(port, "POST", "/api/notes", "text=kept+in+postgres").contains("kept in postgres"));
    let notes = http(port, "GET", "/api/notes", "");
    assert!(
        notes.contains("\"notes\": [\"kept in postgres\"]"),
        "{notes}"
    );
    assert!(notes.contains("\"posted\": 1"), "{notes}");
    assert!(notes.contains("\"version\": \"1.0\""), "{notes}");
    // The API runs as the user its image says, not root.
    assert_eq!(stack(&["exec", "-T", "api", "id", "-un"]), "notes\n");

    // The database's files are in the named volume: they outlive the containers.
    stack(&["down"]);
    stack(&["up", "-d", "--wait"]);
    let notes = http(port, "GET", "/api/notes", "");
    assert!(notes.contains("kept in postgres"), "{notes}");
    stack(&["down", "-v"]);
}
