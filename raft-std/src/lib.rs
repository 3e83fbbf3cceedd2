//! raft-std: placeholder until its issue lands.
