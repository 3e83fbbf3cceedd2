//! Finding: out of file descriptors (EMFILE), a node's accept failed. The TCP transport's
//! acceptor backs off (warning once) and takes connections again once descriptors are free.
//! (Its own test binary: it lowers the process's file-descriptor limit.)

mod logs;

use std::time::Duration;

use raft_core::Bytes;
use raft_std::{TcpConfig, TcpTransport, Transport};
use rustix::process::{getrlimit, setrlimit, Resource};

#[tokio::test]
async fn out_of_file_descriptors_the_acceptor_backs_off_and_recovers() {
    let logs = logs::capture();
    let config = || TcpConfig::new("test", "127.0.0.1:0".parse().unwrap());
    let mut one = TcpTransport::bind(1, config()).await.unwrap();
    let mut two = TcpTransport::bind(2, config()).await.unwrap();
    one.set_peer_address(2, &two.local_addr().to_string());
    two.set_peer_address(1, &one.local_addr().to_string());

    // Take every file descriptor but one, which a dialer then takes: the acceptor has none.
    let limit = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, rustix::process::Rlimit { current: Some(256), ..limit }).unwrap();
    let mut hog = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hog.push(file);
    }
    hog.pop();
    let dialer = std::net::TcpStream::connect(one.local_addr()).expect("the kernel completes the connection");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = logs.text();

    // Descriptors free again: the node accepts, and its peer's frames arrive.
    drop(hog);
    drop(dialer);
    setrlimit(Resource::Nofile, limit).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        two.send(1, Bytes::from_static(b"hello"));
        if let Ok(Some(received)) = tokio::time::timeout(Duration::from_millis(200), one.recv()).await {
            assert_eq!(received, (2, Bytes::from_static(b"hello")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the node never accepted again");
    }
    assert_eq!(
        during.matches("cannot accept a connection (out of file descriptors?)").count(),
        1,
        "warned once: {during}"
    );
    let retries = during.matches("still cannot accept").count();
    assert!(
        (2..=8).contains(&retries),
        "backed off, neither spinning nor stuck: {retries} retries in 500 ms"
    );
    assert!(logs.text().contains("accepting connections again"));
    one.shutdown().await;
    two.shutdown().await;
}
