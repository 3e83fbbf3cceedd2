//! Three Raft nodes over the UDP transport, on three embassy-net stacks joined by an in-memory
//! IP "hub" (an embassy-net `Driver` per node; the hub routes each IPv4 packet to the driver
//! of its destination address; nothing leaves the process). Frames are the small-MTU preset's
//! (508 bytes) and authenticated with a pre-shared key.
//!
//! The cluster elects a leader and commits commands of up to 300 bytes; a follower is cut off
//! while the leader commits and compacts past it, then catches up by InstallSnapshot in
//! chunks that fit the frames; a fourth host that does not hold the key sends forged frames,
//! which are rejected and counted while the cluster carries on. Runs on embassy-time's mock
//! clock, advanced 1 ms per executor pass.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Waker};

use embassy_net::driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, MockDriver};
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::StreamExt;
use raft_core::{
    Bytes, Config, Event, Incoming, Index, MemState, Membership, Message, NodeId, Outgoing, RaftStreamExt,
    Role,
};
use raft_embassy::{small_frame_config, FrameKey, Framing, TickExt, UdpTransport, SMALL_UDP_FRAME};

/// Runs the executor until a condition holds (or a deadline passes).
type RunUntil<'a> = dyn FnMut(&mut LocalPool, &str, &mut dyn FnMut() -> bool) + 'a;

const HOSTS: usize = 4; // three nodes and a stranger
const PORT: u16 = 7100;
type Transport = UdpTransport<NoopRawMutex, 3, 8, SMALL_UDP_FRAME>;

/// Packets waiting for each host, and who is cut off.
#[derive(Default)]
struct Hub {
    queues: [VecDeque<Vec<u8>>; HOSTS],
    wakers: [Option<Waker>; HOSTS],
    cut: [bool; HOSTS],
    delivered: u64,
}

fn address(host: usize) -> Ipv4Address {
    Ipv4Address::new(192, 0, 2, host as u8 + 1) // TEST-NET-1, in memory only
}

struct HubDriver {
    host: usize,
    hub: Rc<RefCell<Hub>>,
}

struct Rx(Vec<u8>);

struct Tx {
    from: usize,
    hub: Rc<RefCell<Hub>>,
}

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let result = f(&mut packet);
        let mut hub = self.hub.borrow_mut();
        // IPv4: the destination address is bytes 16..20.
        let to = packet.get(16..20).and_then(|d| (0..HOSTS).find(|&h| address(h).octets() == d));
        if let Some(to) = to.filter(|&to| !hub.cut[to] && !hub.cut[self.from]) {
            hub.queues[to].push_back(packet);
            hub.delivered += 1;
            if let Some(waker) = hub.wakers[to].take() {
                waker.wake();
            }
        }
        result
    }
}

impl Driver for HubDriver {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, cx: &mut Context) -> Option<(Rx, Tx)> {
        let mut hub = self.hub.borrow_mut();
        match hub.queues[self.host].pop_front() {
            Some(packet) => Some((Rx(packet), Tx { from: self.host, hub: self.hub.clone() })),
            None => {
                hub.wakers[self.host] = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<Tx> {
        Some(Tx { from: self.host, hub: self.hub.clone() })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = Capabilities::default();
        capabilities.max_transmission_unit = 576; // the IPv4 minimum
        capabilities
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

fn endpoint(host: usize) -> IpEndpoint {
    IpEndpoint::new(address(host).into(), PORT)
}

fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
}

/// A stack and a bound socket for `host`, its runner spawned on `pool`.
fn socket(host: usize, hub: &Rc<RefCell<Hub>>, pool: &LocalPool) -> &'static UdpSocket<'static> {
    let driver = HubDriver { host, hub: hub.clone() };
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(address(host), 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, mut runner) =
        embassy_net::new(driver, config, leak(StackResources::<2>::new()), host as u64 + 1);
    pool.spawner().spawn_local(async move { runner.run().await }).unwrap();
    let socket = UdpSocket::new(
        stack,
        leak([PacketMetadata::EMPTY; 16]),
        leak([0; 8192]),
        leak([PacketMetadata::EMPTY; 16]),
        leak([0; 8192]),
    );
    let socket = leak(socket);
    socket.bind(PORT).unwrap();
    socket
}

struct Observed {
    roles: [(Role, u64); 3],
    committed: Vec<u64>,
    /// (last log index, first index, applied index) per node, from its latest diagnostics.
    diagnostics: [Option<(Index, Index, Index)>; 3],
}

#[test]
fn a_cluster_over_udp_replicates_snapshots_and_rejects_forgeries() {
    let hub = Rc::new(RefCell::new(Hub::default()));
    let mut pool = LocalPool::new();
    let observed = Rc::new(RefCell::new(Observed {
        roles: [(Role::Follower, 0); 3],
        committed: Vec::new(),
        diagnostics: [None; 3],
    }));
    let key = FrameKey::new(*b"a pre-shared key of 32 bytes....");
    let framing = Framing::Udp { authenticated: true };
    let config = Config { snapshot_every: 16, ..small_frame_config(framing, SMALL_UDP_FRAME, 3).unwrap() };
    assert!(config.snapshot_chunk_bytes > 300 && config.max_append_bytes > 300 + 24, "{config:?}");
    let peers: Vec<(NodeId, IpEndpoint)> = (0..3).map(|h| (h as NodeId + 1, endpoint(h))).collect();

    let mut clients: Vec<UnboundedSender<Incoming>> = Vec::new();
    let mut transports: Vec<&'static Transport> = Vec::new();
    for host in 0..3 {
        let id = host as NodeId + 1;
        let socket = socket(host, &hub, &pool);
        let transport: &'static Transport =
            leak(Transport::new(id, &peers, &config).unwrap().with_key(key.clone(), &config).unwrap());
        transports.push(transport);
        pool.spawner()
            .spawn_local(async move {
                let error = transport.run_sender(socket).await;
                panic!("the sender stopped: {error}");
            })
            .unwrap();
        let (client, requests) = unbounded();
        clients.push(client);
        let inputs = futures::stream::select(transport.incoming(socket), requests)
            .with_ticks(Duration::from_millis(10));
        let log: MemState = MemState::new(Membership::new([1, 2, 3]));
        let machine: Vec<Bytes> = Vec::new();
        let mut outputs =
            inputs.into_raft_events_with(id, (log, machine), Config { seed: id, ..config.clone() });
        let observed = observed.clone();
        pool.spawner()
            .spawn_local(async move {
                while let Some(output) = outputs.next().await {
                    match output.expect("the node runs") {
                        Outgoing::Send { to, message } => _ = transport.send(to, message),
                        Outgoing::Event(Event::RoleChanged { role, term, .. }) => {
                            observed.borrow_mut().roles[host] = (role, term)
                        }
                        Outgoing::Event(Event::Proposal { id, result: Ok(_) }) => {
                            observed.borrow_mut().committed.push(id)
                        }
                        Outgoing::Event(Event::Diagnostics(d)) => {
                            observed.borrow_mut().diagnostics[host] =
                                Some((d.last_log.index, d.first_index, d.applied_index))
                        }
                        Outgoing::Event(_) => {}
                    }
                }
            })
            .unwrap();
    }
    // The stranger: right address space, wrong key.
    let stranger_socket = socket(3, &hub, &pool);
    let stranger_peers = [(1, endpoint(0)), (3, endpoint(2))];
    let stranger: &'static Transport = leak(
        Transport::new(2, &stranger_peers, &config)
            .unwrap()
            .with_key(FrameKey::new([0x55; 32]), &config)
            .unwrap(),
    );
    pool.spawner()
        .spawn_local(async move {
            let error = stranger.run_sender(stranger_socket).await;
            panic!("the stranger's sender stopped: {error}");
        })
        .unwrap();

    let mut now = 0;
    let mut run_until = |pool: &mut LocalPool, what: &str, done: &mut dyn FnMut() -> bool| {
        let deadline = now + 20_000;
        while !done() {
            assert!(now < deadline, "timed out waiting for {what}");
            pool.run_until_stalled();
            MockDriver::get().advance(Duration::from_millis(1));
            now += 1;
        }
    };
    let leader = |observed: &Observed| (0..3).find(|&h| observed.roles[h].0 == Role::Leader);

    run_until(&mut pool, "a leader", &mut || leader(&observed.borrow()).is_some());
    let first = leader(&observed.borrow()).unwrap();
    let propose = |clients: &[UnboundedSender<Incoming>], to: usize, ids: std::ops::Range<u64>| {
        for id in ids {
            let command = Bytes::from(vec![id as u8; 100 + (id as usize * 37) % 200]);
            clients[to].unbounded_send(Incoming::Propose { id, command: command.into() }).unwrap();
        }
    };
    propose(&clients, first, 1..31);
    run_until(&mut pool, "30 commits", &mut || observed.borrow().committed.len() == 30);

    // Cut a follower off while the leader commits and compacts past it.
    let lagging = (first + 1) % 3;
    hub.borrow_mut().cut[lagging] = true;
    propose(&clients, first, 31..71);
    run_until(&mut pool, "70 commits", &mut || observed.borrow().committed.len() == 70);
    let diagnostics = |pool: &mut LocalPool, run_until: &mut RunUntil| {
        observed.borrow_mut().diagnostics = [None; 3];
        for client in &clients {
            client.unbounded_send(Incoming::Diagnostics).unwrap();
        }
        run_until(pool, "diagnostics", &mut || observed.borrow().diagnostics.iter().all(Option::is_some));
        observed.borrow().diagnostics.map(Option::unwrap)
    };
    let before = diagnostics(&mut pool, &mut run_until);
    assert!(
        before[first].1 > before[lagging].0 + 1,
        "the leader compacted past the lagging node's log: {before:?}"
    );
    hub.borrow_mut().cut[lagging] = false;
    let mut caught_up = false;
    for _ in 0..200 {
        let now = diagnostics(&mut pool, &mut run_until);
        if now[lagging].2 == now[first].2 && now[lagging].2 >= 71 {
            caught_up = true;
            break;
        }
    }
    assert!(caught_up, "the lagging node caught up by InstallSnapshot");

    // Forgeries: the stranger claims to be node 2 and talks to node 1 and node 3.
    for to in [1, 3] {
        for term in 0..5 {
            _ = stranger.send(to, Message::TimeoutNow { term: 100 + term });
        }
    }
    propose(&clients, first, 71..81);
    run_until(&mut pool, "80 commits and the forgeries", &mut || {
        observed.borrow().committed.len() == 80
            && transports.iter().map(|t| t.stats().rejected_auth).sum::<u32>() >= 10
    });
    let stats: Vec<_> = transports.iter().map(|t| t.stats()).collect();
    let rejected: u32 = stats.iter().map(|s| s.rejected_auth).sum();
    assert_eq!(rejected, 10, "every forged frame is rejected: {stats:?}");
    assert!(
        stats.iter().all(|s| s.malformed == 0 && s.unknown_sender == 0 && s.send_failed == 0),
        "{stats:?}"
    );
    assert!(observed.borrow().roles.iter().all(|&(_, term)| term < 100), "a forged TimeoutNow took effect");
    println!(
        "udp: {} packets through the hub; per node: {}",
        hub.borrow().delivered,
        stats.iter().map(|s| format!("[{s}]")).collect::<Vec<_>>().join(" ")
    );
}
