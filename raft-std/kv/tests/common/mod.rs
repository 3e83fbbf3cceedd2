//! raft-kv's test harness: raft-service's process harness
//! ([`raft_service::test_support`]: free ports, temporary data directories, SIGKILL and restart,
//! plain HTTP or HTTPS with certificates made by `raft-kv certs`) running the `raft-kv` binary,
//! and the key-value requests ([`KvApi`]).
#![allow(dead_code)] // each test binary uses its own subset of the harness

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use raft_service::test_support;
pub use raft_service::test_support::{Answer, Api, NodeId};
use reqwest::StatusCode;

const PROGRAM: &str = env!("CARGO_BIN_EXE_raft-kv");

/// The `raft-kv` processes of a cluster (see [`test_support::Cluster`]).
pub struct Cluster(test_support::Cluster);

impl Cluster {
    /// Starts nodes `1..=size` as a new cluster serving plain HTTP (`--insecure`);
    /// `extra_args` go to every node.
    pub fn start(size: u64, extra_args: &[&str]) -> Cluster {
        Cluster(test_support::Cluster::start(PROGRAM, size, extra_args))
    }

    /// Starts nodes `1..=size` as a new cluster serving HTTPS (see [`Cluster::secure`]).
    pub fn start_secure(size: u64, extra_args: &[&str], clients: &[&str]) -> Cluster {
        Cluster(test_support::Cluster::start_secure(PROGRAM, size, extra_args, clients))
    }

    /// Chooses ports and a data directory for nodes `1..=size`, which will serve HTTPS, and
    /// makes certificates with `raft-kv certs` for them, the admin client and `clients`
    /// (`NAME=ROLE`). Starts no node.
    pub fn secure(size: u64, extra_args: &[&str], clients: &[&str]) -> Cluster {
        Cluster(test_support::Cluster::secure(PROGRAM, size, extra_args, clients))
    }

    /// Chooses ports and a data directory for nodes `1..=size` without starting any.
    pub fn new(size: u64, extra_args: &[&str]) -> Cluster {
        Cluster(test_support::Cluster::new(PROGRAM, size, extra_args))
    }
}

impl Deref for Cluster {
    type Target = test_support::Cluster;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// The key-value requests.
#[allow(async_fn_in_trait)] // test code: no Send bound needed by callers
pub trait KvApi {
    /// `PUT /kv/{key}` on node `id`.
    async fn put(&self, id: NodeId, key: &str, value: &str) -> Result<Answer, String>;

    /// A linearizable read, or a local (stale) one.
    async fn get(&self, id: NodeId, key: &str, stale: bool) -> Result<Answer, String>;

    /// Writes `key` through node `id`, retrying while the cluster answers 503 or the node is
    /// unreachable (a put of the same value is idempotent). Returns the write's log index.
    async fn put_until_acknowledged(&self, id: NodeId, key: &str, value: &str, within: Duration) -> u64;
}

impl KvApi for Api {
    async fn put(&self, id: NodeId, key: &str, value: &str) -> Result<Answer, String> {
        self.send(self.client().put(self.url(id, &format!("/kv/{key}"))).body(value.to_string())).await
    }

    async fn get(&self, id: NodeId, key: &str, stale: bool) -> Result<Answer, String> {
        let consistency = if stale { "?consistency=stale" } else { "" };
        self.fetch(id, &format!("/kv/{key}{consistency}")).await
    }

    async fn put_until_acknowledged(&self, id: NodeId, key: &str, value: &str, within: Duration) -> u64 {
        let start = Instant::now();
        loop {
            match self.put(id, key, value).await {
                Ok(answer) if answer.status == StatusCode::OK => {
                    return answer.body["index"].as_u64().expect("an index");
                }
                Ok(answer) => assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}"),
                Err(_) => {}
            }
            assert!(start.elapsed() < within, "{key} not acknowledged within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
