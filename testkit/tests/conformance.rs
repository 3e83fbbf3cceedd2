//! raft-core's in-memory log store passes the log-store conformance suite.

use testkit::conformance::{check_log_store, InMemory};

#[test]
fn mem_state_conforms() {
    futures::executor::block_on(check_log_store(InMemory));
}
