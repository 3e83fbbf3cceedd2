//! Async in-process write throughput of `raft-core` and of openraft 0.9, side by side.
//!
//! # Method
//!
//! openraft's published `cluster_benchmark` method, applied to both libraries alike:
//!
//! * three voters in one tokio runtime, in-memory storage, a "network" that hands each message
//!   straight to the peer (no serialization, no sockets);
//! * empty requests (zero-length commands) applied to a state machine that only counts;
//! * `C` concurrent clients (1, 64, 256, 1024), each a task that proposes on the leader, waits
//!   for the acknowledgement (committed by a majority *and* applied on the leader) and repeats;
//! * per run a fresh cluster; once a leader is elected, a warm-up of 10 % of the row's writes
//!   with the same clients, then the timed part: acknowledged writes / elapsed wall time, until
//!   every client has its last acknowledgement;
//! * each row runs [`RUNS`] times per library, the two libraries alternating which goes first,
//!   and the table shows medians. Beside writes/s it shows the CPU time the whole process spent
//!   per write (all threads, from `/proc/self/task/*/schedstat`), which on a shared machine is
//!   steadier than wall-clock throughput.
//!
//! The whole table is measured twice: on tokio's multi-thread runtime with its default worker
//! count (one per core), then on the current-thread runtime.
//!
//! # The two sides
//!
//! `raft-core` is driven the way an application would drive its stream API (see [`run_node`]):
//! each node is [`RaftStreamExt::into_raft_events_with`] over its inbox, a tokio unbounded
//! channel that also receives a tick every 10 ms, in a task that routes the outputs:
//! `Outgoing::Send` goes into the peer's inbox and `Event::Proposal` completes the client's
//! oneshot. Every acknowledged write is a real proposal, replicated to a majority and applied.
//! openraft's side is in [`openraft_cluster`].
//!
//! Configuration, chosen to make the two do the same work:
//!
//! * `max_inflight: 1`: one AppendEntries in flight per follower, as openraft 0.9's replication
//!   task does (it awaits each RPC before sending the next, with everything appended
//!   meanwhile). With our default of 32, an in-process follower answers so fast that the leader
//!   sends messages of 2–6 entries and throughput drops by a third.
//! * `snapshot_every: 5000`: compact the log every 5000 applied entries, as openraft's default
//!   snapshot policy does (`since_last:5000`), so neither log grows without bound.
//! * election timeouts and heartbeat: each library's defaults (openraft: as in its benchmark).
//!
//! # Usage
//!
//! `cargo bench -p testkit --bench async_inprocess` prints both tables (about 100 s on a
//! 2-core machine). `ratio` is ours over openraft in writes/s; `CPU ratio` is openraft's CPU
//! per write over ours. For profiling, arguments narrow the run down:
//! `cargo bench -p testkit --bench async_inprocess -- [ours|openraft] [multi|current]
//! [CLIENTS...]`, e.g. `-- ours multi 256`.

mod openraft_cluster;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use raft_core::{
    Applied, Command, Config, Event, Incoming, Instant, MemState, Membership, NodeId, Outgoing, ProposeError,
    RaftStreamExt, RequestId, Role,
};
use testkit::CommandCounter;
use tokio::runtime::Builder;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::openraft_cluster::OpenraftCluster;

/// (concurrent clients, acknowledged writes timed per run).
const ROWS: [(usize, usize); 4] = [(1, 50_000), (64, 500_000), (256, 500_000), (1024, 500_000)];
/// Runs per row and library; the table shows the median.
const RUNS: usize = 7;
/// How often each of our nodes receives [`Incoming::Tick`].
const TICK: Duration = Duration::from_millis(10);

/// A three-node cluster of one library, started with a leader in place.
trait Cluster: Sized {
    /// A handle clients write through (to the leader).
    type Client: Client;
    /// Starts three nodes and waits until one of them leads.
    fn start() -> impl Future<Output = Self>;
    /// A client handle on the leader.
    fn client(&self) -> Self::Client;
    /// Stops every node.
    fn shutdown(self) -> impl Future<Output = ()>;
}

/// One client's view: a write that returns once acknowledged.
trait Client: Clone + Send + Sync + 'static {
    /// Proposes an empty command and waits until it is committed and applied on the leader.
    fn write(&self) -> impl Future<Output = ()> + Send;
}

fn main() {
    let args = Args::parse();
    for flavor in [Flavor::MultiThread, Flavor::CurrentThread] {
        if args.flavors.contains(&flavor) {
            run_table(&args, flavor);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

/// Measures every selected row on a fresh runtime of `flavor` and prints the table.
fn run_table(args: &Args, flavor: Flavor) {
    let mut builder = match flavor {
        Flavor::MultiThread => Builder::new_multi_thread(),
        Flavor::CurrentThread => Builder::new_current_thread(),
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    let workers = runtime.metrics().num_workers();
    let name = match flavor {
        Flavor::MultiThread => "multi-thread",
        Flavor::CurrentThread => "current-thread",
    };
    println!("tokio {name} runtime, {workers} worker thread(s); median of {RUNS} runs per cell");
    println!(
        "{:>7} | {:>13} | {:>17} | {:>5} | {:>17} | {:>21} | {:>9}",
        "clients",
        "ours writes/s",
        "openraft writes/s",
        "ratio",
        "ours CPU ns/write",
        "openraft CPU ns/write",
        "CPU ratio"
    );
    println!("{:-<7}-+-{:-<13}-+-{:-<17}-+-{:-<5}-+-{:-<17}-+-{:-<21}-+-{:-<9}", "", "", "", "", "", "", "");
    let rows =
        ROWS.into_iter().filter(|(clients, _)| args.clients.is_empty() || args.clients.contains(clients));
    runtime.block_on(async {
        for (clients, writes) in rows {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for run in 0..RUNS {
                if args.ours && run % 2 == 0 {
                    ours.push(measure::<OurCluster>(clients, writes).await);
                }
                if args.openraft {
                    theirs.push(measure::<OpenraftCluster>(clients, writes).await);
                }
                if args.ours && run % 2 == 1 {
                    ours.push(measure::<OurCluster>(clients, writes).await);
                }
            }
            let (ours_rate, theirs_rate) = (median(&ours, |m| m.rate), median(&theirs, |m| m.rate));
            let (ours_cpu, theirs_cpu) = (median(&ours, |m| m.cpu_ns), median(&theirs, |m| m.cpu_ns));
            println!(
                "{clients:>7} | {ours_rate:>13.0} | {theirs_rate:>17.0} | {:>5.2} | {ours_cpu:>17.0} | {theirs_cpu:>21.0} | {:>9.2}",
                ours_rate / theirs_rate,
                theirs_cpu / ours_cpu,
            );
        }
    });
    println!();
}

/// Command line: `[ours | openraft] [multi | current] [CLIENTS...]` narrows the run to one
/// library, one runtime flavor and some rows; no arguments runs everything.
struct Args {
    ours: bool,
    openraft: bool,
    flavors: Vec<Flavor>,
    clients: Vec<usize>,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            ours: true,
            openraft: true,
            flavors: vec![Flavor::MultiThread, Flavor::CurrentThread],
            clients: Vec::new(),
        };
        // `cargo bench` passes `--bench`; flags are not ours.
        for arg in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
            match arg.as_str() {
                "ours" => args.openraft = false,
                "openraft" => args.ours = false,
                "multi" => args.flavors = vec![Flavor::MultiThread],
                "current" => args.flavors = vec![Flavor::CurrentThread],
                n => args.clients.push(
                    n.parse()
                        .expect("usage: async_inprocess [ours | openraft] [multi | current] [CLIENTS...]"),
                ),
            }
        }
        args
    }
}

/// One timed run.
struct Measurement {
    /// Acknowledged writes per second.
    rate: f64,
    /// CPU time of the whole process per write, in nanoseconds (NaN where unavailable).
    cpu_ns: f64,
}

/// Starts a cluster, warms it up, then times `clients` clients sharing `writes` writes.
async fn measure<C: Cluster>(clients: usize, writes: usize) -> Measurement {
    let cluster = C::start().await;
    let client = cluster.client();
    run_clients(&client, clients, writes / 10).await;
    let cpu_before = process_cpu_ns();
    let start = std::time::Instant::now();
    let done = run_clients(&client, clients, writes).await as f64;
    let elapsed = start.elapsed();
    let cpu = match (cpu_before, process_cpu_ns()) {
        (Some(before), Some(after)) => (after - before) as f64 / done,
        _ => f64::NAN,
    };
    cluster.shutdown().await;
    Measurement { rate: done / elapsed.as_secs_f64(), cpu_ns: cpu }
}

/// Runs `clients` client tasks that write in a loop until they have `writes` between them;
/// returns how many writes were made (rounded up to a multiple of `clients`).
async fn run_clients(client: &impl Client, clients: usize, writes: usize) -> usize {
    let per_client = writes.div_ceil(clients);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_client {
                    client.write().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    per_client * clients
}

/// The median of one field (NaN when nothing was measured).
fn median(runs: &[Measurement], field: impl Fn(&Measurement) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(field).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time consumed so far by every thread of this process (Linux), in nanoseconds.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

// ----- our side -----------------------------------------------------------------------------

/// Where a client waits for its proposal's outcome.
type Reply = oneshot::Sender<Result<Applied, ProposeError>>;

/// What a node's inbox carries: protocol input, or a client's proposal with its reply channel.
enum Input {
    Raft(Incoming),
    Propose { command: Command, reply: Reply },
}

/// Proposals waiting for their outcome, by request id. Ids are handed out in order and
/// outcomes come back (almost always) in order, so a ring indexed by `id - first` does.
#[derive(Default)]
struct Pending {
    /// Request id of `replies[0]`.
    first: RequestId,
    replies: VecDeque<Option<Reply>>,
}

impl Pending {
    /// Files `reply` under a fresh request id.
    fn insert(&mut self, reply: Reply) -> RequestId {
        self.replies.push_back(Some(reply));
        self.first + self.replies.len() as RequestId - 1
    }

    /// Takes the reply filed under `id`, if still there.
    fn take(&mut self, id: RequestId) -> Option<Reply> {
        let reply = self.replies.get_mut(id.checked_sub(self.first)? as usize)?.take();
        while self.replies.front().is_some_and(Option::is_none) {
            self.replies.pop_front();
            self.first += 1;
        }
        reply
    }
}

/// Three `raft-core` nodes, each a task running its event stream and routing its outputs.
struct OurCluster {
    inboxes: Arc<[mpsc::UnboundedSender<Input>]>,
    tasks: Vec<JoinHandle<()>>,
    leader: NodeId,
}

/// Sends proposals into the leader's inbox.
#[derive(Clone)]
struct OurClient(mpsc::UnboundedSender<Input>);

impl Cluster for OurCluster {
    type Client = OurClient;

    async fn start() -> Self {
        let voters: [NodeId; 3] = [1, 2, 3];
        let (senders, receivers): (Vec<_>, Vec<_>) = voters.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let inboxes: Arc<[_]> = senders.into();
        let (leader_tx, mut leader_rx) = watch::channel(None);
        let mut tasks: Vec<_> = voters
            .iter()
            .zip(receivers)
            .map(|(&id, inbox)| {
                tokio::spawn(run_node(id, voters, inbox, Arc::clone(&inboxes), leader_tx.clone()))
            })
            .collect();
        tasks.push(tokio::spawn(run_clock(Arc::clone(&inboxes))));
        let leader = *leader_rx.wait_for(Option::is_some).await.expect("a leader is elected");
        OurCluster { inboxes, tasks, leader: leader.expect("checked") }
    }

    fn client(&self) -> OurClient {
        OurClient(self.inboxes[index_of(self.leader)].clone())
    }

    async fn shutdown(self) {
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Client for OurClient {
    async fn write(&self) {
        let (reply, outcome) = oneshot::channel();
        let input = Input::Propose { command: Command::new(), reply };
        self.0.send(input).unwrap_or_else(|_| panic!("leader inbox closed"));
        outcome.await.expect("leader answered").expect("write acknowledged");
    }
}

fn index_of(id: NodeId) -> usize {
    id as usize - 1
}

/// The cluster's clock: every [`TICK`], sends each node the time (ms since start) through its
/// inbox. (A tokio interval merged into each node's input stream with `stream::select` works
/// as well, but costs more: the driver polls the timer every time it looks for more input,
/// 5–10 % of the CPU in our profiles.)
async fn run_clock(inboxes: Arc<[mpsc::UnboundedSender<Input>]>) {
    let epoch = std::time::Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let now = Instant::from_millis(epoch.elapsed().as_millis() as u64);
        for inbox in inboxes.iter() {
            let _ = inbox.send(Input::Raft(Incoming::Tick(now)));
        }
    }
}

/// One node: `into_raft_events_with` over its inbox; this task routes what comes out.
/// Messages go straight into the peer's inbox; proposal outcomes go back to the client.
async fn run_node(
    id: NodeId,
    voters: [NodeId; 3],
    inbox: mpsc::UnboundedReceiver<Input>,
    inboxes: Arc<[mpsc::UnboundedSender<Input>]>,
    leader: watch::Sender<Option<NodeId>>,
) {
    let state = (MemState::new(Membership::new(voters)), CommandCounter::default());
    let config = Config { seed: id, max_inflight: 1, snapshot_every: 5000, ..Config::default() };
    // Filled as proposals enter the node, emptied as their outcomes leave it. Both happen in
    // this task, so the lock is never contended.
    let pending: Arc<Mutex<Pending>> = Arc::default();
    let filing = Arc::clone(&pending);
    let input = UnboundedReceiverStream::new(inbox).map(move |input| match input {
        Input::Raft(incoming) => incoming,
        Input::Propose { command, reply } => {
            let id = filing.lock().unwrap().insert(reply);
            Incoming::Propose { id, command }
        }
    });
    let mut events = input.into_raft_events_with(id, state, config);
    while let Some(output) = events.next().await {
        match output.expect("MemState never fails") {
            Outgoing::Send { to, message } => {
                // A closed inbox is a stopped peer: the message is lost, which Raft tolerates.
                let _ = inboxes[index_of(to)].send(Input::Raft(Incoming::Message { from: id, message }));
            }
            Outgoing::Event(Event::Proposal { id: request, result }) => {
                if let Some(reply) = pending.lock().unwrap().take(request) {
                    let _ = reply.send(result);
                }
            }
            Outgoing::Event(Event::RoleChanged { role: Role::Leader, .. }) => {
                leader.send_replace(Some(id));
            }
            Outgoing::Event(_) => {}
        }
    }
}
