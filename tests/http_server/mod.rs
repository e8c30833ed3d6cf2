//! A tiny HTTP/1.1 server on 127.0.0.1 for download tests: no network beyond loopback. It
//! answers a bounded number of requests from one thread, then stops by itself.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

pub enum Route {
    /// 200 with the whole body.
    Full(Vec<u8>),
    /// 200 announcing the whole body's `Content-Length`, then only `send` bytes and a close:
    /// a connection dropped mid-download.
    Truncated { body: Vec<u8>, send: usize },
    /// 200 sending `first` bytes, telling `sent` so, then waiting for `go` before the rest.
    Gated {
        body: Vec<u8>,
        first: usize,
        sent: Sender<()>,
        go: Receiver<()>,
    },
    /// An error status with a short body.
    Status(u16),
}

/// Serves `routes` (by exact path) for at most `max_requests` requests; returns the base URL
/// (`http://127.0.0.1:PORT`).
pub fn serve(routes: Vec<(&'static str, Route)>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut routes = routes;
        for _ in 0..max_requests {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let _ = handle(stream, &mut routes);
        }
    });
    base
}

fn handle(mut s: TcpStream, routes: &mut Vec<(&'static str, Route)>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let header = |len: usize| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    match routes.iter().position(|(p, _)| *p == path) {
        None => not_found(&mut s, 404),
        Some(i) => match &routes[i].1 {
            Route::Full(body) => {
                s.write_all(header(body.len()).as_bytes())?;
                s.write_all(body)
            }
            Route::Truncated { body, send } => {
                s.write_all(header(body.len()).as_bytes())?;
                s.write_all(&body[..*send])?;
                s.flush()
                // Dropping the stream closes the connection early.
            }
            Route::Status(code) => not_found(&mut s, *code),
            Route::Gated { .. } => {
                // One use: taken out of the table.
                let Route::Gated {
                    body,
                    first,
                    sent,
                    go,
                } = routes.remove(i).1
                else {
                    unreachable!()
                };
                s.write_all(header(body.len()).as_bytes())?;
                s.write_all(&body[..first])?;
                s.flush()?;
                let _ = sent.send(());
                let _ = go.recv_timeout(Duration::from_secs(30));
                s.write_all(&body[first..])
            }
        },
    }
}

fn not_found(s: &mut TcpStream, code: u16) -> std::io::Result<()> {
    let body = format!("status {code}");
    write!(
        s,
        "HTTP/1.1 {code} Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
