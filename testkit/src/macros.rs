//! The `seq_test!` macro.

/// Runs a scenario written in the [`Command`](crate::Command) language and panics with the
/// failed step, the cluster table, the seed and the latest events if a step fails or the run
/// breaks a safety rule. Evaluates to the finished [`Session`](crate::Session).
///
/// Commands are separated by `;`; `//` comments are allowed. See the crate README for every
/// command.
///
/// ```
/// use testkit::seq_test;
/// let session = seq_test! {
///     cluster [1, 2, 3] with { pre_vote, check_quorum };
///     elect 1;                                    // drive until node 1 leads
///     propose 1 "x=1" => committed on [1, 2, 3];
///     partition [1] | [2, 3];
///     advance 2 * election_timeout;
///     expect leader in [2, 3];
///     expect leader term > 1;
///     expect 1 is not leader;                     // check-quorum stepped it down
///     heal;
///     advance election_timeout;
///     expect logs equal;
/// };
/// assert!(session.simulator().unwrap().leader().is_some());
/// ```
#[macro_export]
macro_rules! seq_test {
    ($($script:tt)*) => {
        match $crate::Session::run_script(stringify!($($script)*)) {
            Ok(session) => session,
            Err(failure) => panic!("seq_test! scenario failed\n{failure}"),
        }
    };
}
