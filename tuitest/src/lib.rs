//! tuitest: placeholder until its issue lands.
