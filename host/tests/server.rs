//! `server::serve`, the accept loop every sigil HTTP binary uses: shutdown stops accepting
//! and drains requests already in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(400)).await;
    "done"
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = Router::new().route("/slow", get(slow));
    let server = tokio::spawn(sigil_host::server::serve(listener, None, router, async move {
        let _ = rx.await;
    }));

    let in_flight = tokio::spawn(async move { http_get(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    tx.send(()).unwrap();

    // The request that was already being served completes normally…
    let reply = in_flight.await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("done"), "{reply}");
    // …the server finishes once it has drained…
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    assert!(asked.elapsed() >= Duration::from_millis(250), "shutdown must wait for the in-flight request");
    // …and nothing is accepted any more.
    assert!(http_get(addr, "/slow").await.is_err() || http_get(addr, "/slow").await.unwrap().is_empty());
}
