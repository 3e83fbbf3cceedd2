//! raft-embassy: placeholder until its issue lands.
