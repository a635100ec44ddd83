//! On-demand source lifecycle as a sans-IO state machine: viewers come and go,
//! time is passed in, and the controller answers with start/stop actions and the
//! next deadline. The tokio shell in [`super::stream`] drives it.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemandPolicy {
    /// Run the source whether or not anyone watches.
    pub always_on: bool,
    /// How long a source keeps running after its last viewer left.
    pub grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemandAction {
    Start,
    Stop,
}

#[derive(Debug)]
pub struct DemandController {
    policy: DemandPolicy,
    viewers: usize,
    running: bool,
    stop_at: Option<Instant>,
}

impl DemandController {
    pub fn new(policy: DemandPolicy) -> Self {
        Self {
            policy,
            viewers: 0,
            running: false,
            stop_at: None,
        }
    }

    pub fn viewers(&self) -> usize {
        self.viewers
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn policy(&self) -> DemandPolicy {
        self.policy
    }

    /// What to do right after creation: always-on sources start at once.
    pub fn initial(&mut self) -> Option<DemandAction> {
        self.start_if_needed()
    }

    fn start_if_needed(&mut self) -> Option<DemandAction> {
        if !self.running && (self.policy.always_on || self.viewers > 0) {
            self.running = true;
            self.stop_at = None;
            return Some(DemandAction::Start);
        }
        None
    }

    pub fn viewer_joined(&mut self, _now: Instant) -> Option<DemandAction> {
        self.viewers += 1;
        self.stop_at = None;
        self.start_if_needed()
    }

    pub fn viewer_left(&mut self, now: Instant) -> Option<DemandAction> {
        self.viewers = self.viewers.saturating_sub(1);
        self.schedule_stop(now)
    }

    fn schedule_stop(&mut self, now: Instant) -> Option<DemandAction> {
        if self.viewers > 0 || !self.running || self.policy.always_on {
            self.stop_at = None;
            return None;
        }
        if self.policy.grace.is_zero() {
            self.running = false;
            self.stop_at = None;
            return Some(DemandAction::Stop);
        }
        if self.stop_at.is_none() {
            self.stop_at = Some(now + self.policy.grace);
        }
        None
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.stop_at
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<DemandAction> {
        match self.stop_at {
            Some(t) if now >= t => {
                self.stop_at = None;
                if self.viewers == 0 && self.running && !self.policy.always_on {
                    self.running = false;
                    return Some(DemandAction::Stop);
                }
                None
            }
            _ => None,
        }
    }

    /// Applies a changed policy (e.g. a source switched to always-on).
    pub fn set_policy(&mut self, policy: DemandPolicy, now: Instant) -> Option<DemandAction> {
        self.policy = policy;
        self.stop_at = None;
        self.start_if_needed().or_else(|| self.schedule_stop(now))
    }

    /// The source ended by itself (e.g. the camera hung up for good): the next
    /// viewer starts it again.
    pub fn source_ended(&mut self) {
        self.running = false;
        self.stop_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn on_demand() -> DemandController {
        DemandController::new(DemandPolicy {
            always_on: false,
            grace: GRACE,
        })
    }

    #[test]
    fn nothing_runs_without_viewers() {
        let mut c = on_demand();
        assert_eq!(c.initial(), None);
        assert_eq!(c.poll_timeout(), None);
        assert!(!c.is_running());
    }

    #[test]
    fn first_viewer_starts_once() {
        let t0 = Instant::now();
        let mut c = on_demand();
        assert_eq!(c.viewer_joined(t0), Some(DemandAction::Start));
        assert_eq!(c.viewer_joined(t0), None);
        assert_eq!(c.viewers(), 2);
    }

    #[test]
    fn stops_exactly_one_grace_period_after_last_viewer() {
        let t0 = Instant::now();
        let mut c = on_demand();
        c.viewer_joined(t0);
        c.viewer_joined(t0);
        assert_eq!(c.viewer_left(t0 + Duration::from_secs(1)), None);
        assert_eq!(c.poll_timeout(), None, "one viewer is still there");
        let left = t0 + Duration::from_secs(2);
        assert_eq!(c.viewer_left(left), None);
        assert_eq!(c.poll_timeout(), Some(left + GRACE));
        assert_eq!(
            c.handle_timeout(left + GRACE - Duration::from_millis(1)),
            None
        );
        assert_eq!(c.handle_timeout(left + GRACE), Some(DemandAction::Stop));
        assert!(!c.is_running());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn viewer_returning_within_grace_cancels_stop() {
        let t0 = Instant::now();
        let mut c = on_demand();
        c.viewer_joined(t0);
        c.viewer_left(t0);
        assert_eq!(c.viewer_joined(t0 + Duration::from_secs(5)), None);
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.handle_timeout(t0 + GRACE * 2), None);
        assert!(c.is_running());
    }

    #[test]
    fn always_on_starts_at_once_and_never_stops() {
        let t0 = Instant::now();
        let mut c = DemandController::new(DemandPolicy {
            always_on: true,
            grace: GRACE,
        });
        assert_eq!(c.initial(), Some(DemandAction::Start));
        c.viewer_joined(t0);
        assert_eq!(c.viewer_left(t0), None);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn switching_to_on_demand_with_no_viewers_schedules_stop() {
        let t0 = Instant::now();
        let mut c = DemandController::new(DemandPolicy {
            always_on: true,
            grace: GRACE,
        });
        c.initial();
        let p = DemandPolicy {
            always_on: false,
            grace: GRACE,
        };
        assert_eq!(c.set_policy(p, t0), None);
        assert_eq!(c.handle_timeout(t0 + GRACE), Some(DemandAction::Stop));
    }

    #[test]
    fn zero_grace_stops_immediately() {
        let t0 = Instant::now();
        let mut c = DemandController::new(DemandPolicy {
            always_on: false,
            grace: Duration::ZERO,
        });
        c.viewer_joined(t0);
        assert_eq!(c.viewer_left(t0), Some(DemandAction::Stop));
    }

    #[test]
    fn source_ended_restarts_on_next_viewer() {
        let t0 = Instant::now();
        let mut c = on_demand();
        c.viewer_joined(t0);
        c.source_ended();
        c.viewer_left(t0);
        assert_eq!(c.viewer_joined(t0), Some(DemandAction::Start));
    }
}
