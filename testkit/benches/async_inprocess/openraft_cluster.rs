//! The openraft side: a three-node [`openraft`] 0.9 cluster (`storage-v2` API) with an
//! in-memory log store, a state machine that only counts, and a network whose RPCs are plain
//! calls on the target node's [`Raft`] handle.
//!
//! Configured the way openraft's own `cluster_benchmark` is (election timeout 200–2000 ms,
//! `purge_batch_size` 1024), plus `max_payload_entries` 1024 instead of 300, the same cap as
//! ours (`max_append_entries`), which helps openraft slightly at 1024 clients. Everything else
//! is default: heartbeat 50 ms, a snapshot every 5000 applied entries, keeping 1000 behind it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, OnceLock};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Config, Entry, EntryPayload, LogId, OptionalSend, Raft, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StoredMembership, Vote,
};

use crate::{Client, Cluster};

/// An empty write request (the benchmark's zero-length command).
#[derive(Clone, Debug, Default)]
pub struct Request;

/// The state machine's (empty) answer.
#[derive(Clone, Debug, Default)]
pub struct Response;

openraft::declare_raft_types!(
    /// Type configuration of the benchmark cluster.
    pub TypeConfig: D = Request, R = Response, Node = ()
);

type NodeId = u64;
type BenchRaft = Raft<TypeConfig>;
type Membership = StoredMembership<NodeId, ()>;

/// A running three-node openraft cluster.
pub struct OpenraftCluster {
    rafts: Vec<BenchRaft>,
    leader: BenchRaft,
}

impl Cluster for OpenraftCluster {
    type Client = BenchRaft;

    async fn start() -> Self {
        let config = Config {
            election_timeout_min: 200,
            election_timeout_max: 2000,
            purge_batch_size: 1024,
            max_payload_entries: 1024,
            ..Config::default()
        };
        let config = Arc::new(config.validate().expect("valid openraft config"));
        let table: Arc<OnceLock<BTreeMap<NodeId, BenchRaft>>> = Arc::default();
        let mut rafts = Vec::new();
        for id in 1..=3 {
            let network = Network { table: Arc::clone(&table) };
            let raft =
                Raft::new(id, Arc::clone(&config), network, LogStore::default(), StateMachine::default())
                    .await
                    .expect("openraft node starts");
            rafts.push(raft);
        }
        let by_id = rafts.iter().enumerate().map(|(i, raft)| (i as NodeId + 1, raft.clone())).collect();
        assert!(table.set(by_id).is_ok(), "routing table set once");
        // Node 1 writes the initial membership (index 0) and campaigns at once; wait until it
        // leads and every node has applied its first entry as leader (index 1).
        let leader = rafts[0].clone();
        leader.initialize(BTreeSet::from([1, 2, 3])).await.expect("cluster initializes");
        for raft in &rafts {
            raft.wait(None).applied_index_at_least(Some(1), "leader's blank entry").await.expect("applied");
        }
        leader.wait(None).current_leader(1, "node 1 leads").await.expect("elected");
        OpenraftCluster { rafts, leader }
    }

    fn client(&self) -> BenchRaft {
        self.leader.clone()
    }

    async fn shutdown(self) {
        for raft in &self.rafts {
            raft.shutdown().await.expect("clean shutdown");
        }
    }
}

impl Client for BenchRaft {
    async fn write(&self) {
        // Returns once the entry is committed and applied on the leader.
        self.client_write(Request).await.expect("openraft write acknowledged");
    }
}

// ----- network: a function call on the target's Raft handle ----------------------------------

/// The network factory: every node shares the routing table.
struct Network {
    table: Arc<OnceLock<BTreeMap<NodeId, BenchRaft>>>,
}

/// A "connection" to one peer: its [`Raft`] handle.
struct Connection {
    target: NodeId,
    raft: BenchRaft,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &()) -> Connection {
        let raft = self.table.get().and_then(|t| t.get(&target)).expect("known peer").clone();
        Connection { target, raft }
    }
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, (), RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.raft.append_entries(rpc).await.map_err(|e| RemoteError::new(self.target, e).into())
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.raft.install_snapshot(rpc).await.map_err(|e| RemoteError::new(self.target, e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.raft.vote(rpc).await.map_err(|e| RemoteError::new(self.target, e).into())
    }
}

// ----- log store ---------------------------------------------------------------------------

/// An in-memory log: a deque of consecutive entries, the vote and the purge point.
#[derive(Clone, Default)]
struct LogStore(Arc<Mutex<LogData>>);

#[derive(Default)]
struct LogData {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    /// Consecutive entries; the front one has index `entries[0].log_id.index`.
    entries: VecDeque<Entry<TypeConfig>>,
}

impl LogData {
    /// Position in `entries` of the entry at `index` (clamped into `0..=len`).
    fn position(&self, index: u64) -> usize {
        let first = self.entries.front().map_or(index, |e| e.log_id.index);
        (index.saturating_sub(first) as usize).min(self.entries.len())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let log = self.0.lock().unwrap();
        let start = match range.start_bound() {
            Bound::Included(&i) => log.position(i),
            Bound::Excluded(&i) => log.position(i + 1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => log.position(i + 1),
            Bound::Excluded(&i) => log.position(i),
            Bound::Unbounded => log.entries.len(),
        };
        Ok(log.entries.range(start..end.max(start)).cloned().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let log = self.0.lock().unwrap();
        let last_log_id = log.entries.back().map(|e| e.log_id).or(log.last_purged);
        Ok(LogState { last_purged_log_id: log.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().unwrap().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().unwrap().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().unwrap().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.0.lock().unwrap().entries.extend(entries);
        // In memory, "durable" as soon as stored.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.0.lock().unwrap();
        let keep = log.position(log_id.index);
        log.entries.truncate(keep);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.0.lock().unwrap();
        let drop = log.position(log_id.index + 1);
        log.entries.drain(..drop);
        log.last_purged = Some(log_id);
        Ok(())
    }
}

// ----- state machine -----------------------------------------------------------------------

/// A state machine that counts applied entries and remembers what openraft needs.
#[derive(Clone, Default)]
struct StateMachine(Arc<Mutex<MachineData>>);

#[derive(Default)]
struct MachineData {
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    applied: u64,
    snapshots_built: u64,
    current: Option<(SnapshotMeta<NodeId, ()>, Vec<u8>)>,
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut sm = self.0.lock().unwrap();
        sm.snapshots_built += 1;
        let index = sm.last_applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: sm.last_applied,
            last_membership: sm.membership.clone(),
            snapshot_id: format!("{index}-{}", sm.snapshots_built),
        };
        let data = sm.applied.to_le_bytes().to_vec();
        sm.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let sm = self.0.lock().unwrap();
        Ok((sm.last_applied, sm.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut sm = self.0.lock().unwrap();
        let mut responses = Vec::new();
        for entry in entries {
            sm.last_applied = Some(entry.log_id);
            sm.applied += 1;
            if let EntryPayload::Membership(membership) = entry.payload {
                sm.membership = StoredMembership::new(Some(entry.log_id), membership);
            }
            responses.push(Response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ()>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let mut sm = self.0.lock().unwrap();
        sm.applied = data.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
        sm.last_applied = meta.last_log_id;
        sm.membership = meta.last_membership.clone();
        sm.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let sm = self.0.lock().unwrap();
        Ok(sm.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
