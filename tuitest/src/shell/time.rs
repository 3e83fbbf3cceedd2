//! `auto`: virtual time that follows the wall clock, recorded as `advance`.

use testkit::{Command, Duration};

use super::{look, Shell};

impl Shell {
    /// Lets `ms` milliseconds pass, as `auto` does, reporting events as they happen, and
    /// records them as `advance`: consecutive ones merge, which replays exactly.
    pub(super) fn advance(&mut self, ms: u64) -> Result<(), String> {
        let start = self.sim()?.now();
        let Shell { session, observer, out, settings, .. } = self;
        let style = settings.style;
        let advance = Command::Advance(Duration::Millis(ms));
        let result = session.run_observed(&advance, &mut |session| look(session, observer, out, style));
        let elapsed = self.sim()?.now() - start;
        self.recording.advance(elapsed);
        result.map(|_| ()).map_err(|error| self.explain(error))
    }
}
