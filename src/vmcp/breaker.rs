//! What the runtime knows of one backend, shared by every client session: its circuit breaker
//! (closed → open after `circuitFailureThreshold` failures in a row → half-open after
//! `circuitOpenMs`, one trial → closed or open again) and its health (periodic checks,
//! unavailable after `unhealthyThreshold` failed checks in a row). Time is passed in, so the
//! state machine is tested without waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::bridge::hub::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ready,
    /// Failed checks, fewer than the threshold.
    Degraded,
    Unavailable,
    /// The backend refuses the runtime's credentials (HTTP 401 or 403 to a check).
    Unauthenticated,
}

/// The breaker's and the health check's settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub breaker_enabled: bool,
    pub failure_threshold: u32,
    pub open_for: Duration,
    pub unhealthy_threshold: u32,
}

#[derive(Debug)]
struct Inner {
    circuit: Circuit,
    failures: u32,
    opened_at: Option<Instant>,
    trial_out: bool,
    circuit_changed: Option<SystemTime>,
    health: Health,
    check_failures: u32,
    last_check: Option<SystemTime>,
    message: Option<String>,
    revision: Option<String>,
    tool_names: Option<Vec<String>>,
}

/// One backend's shared state.
#[derive(Debug)]
pub struct BackendState {
    policy: Policy,
    inner: Mutex<Inner>,
}

/// What a health check found.
pub struct Checked {
    pub revision: String,
    /// The names of the tools it advertises after its selection, sorted.
    pub tool_names: Vec<String>,
}

/// Why a health check failed.
pub struct CheckFailed {
    pub why: String,
    /// HTTP 401 or 403: the credentials, not the backend.
    pub unauthenticated: bool,
}

impl From<&str> for CheckFailed {
    fn from(why: &str) -> Self {
        CheckFailed {
            why: why.to_owned(),
            unauthenticated: false,
        }
    }
}

/// A snapshot for the status report.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub health: Health,
    pub circuit: Circuit,
    pub circuit_changed: Option<SystemTime>,
    pub check_failures: u32,
    pub last_check: Option<SystemTime>,
    pub message: Option<String>,
    pub revision: Option<String>,
    pub tool_count: Option<u32>,
}

impl BackendState {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            inner: Mutex::new(Inner {
                circuit: Circuit::Closed,
                failures: 0,
                opened_at: None,
                trial_out: false,
                circuit_changed: None,
                health: Health::Unknown,
                check_failures: 0,
                last_check: None,
                message: None,
                revision: None,
                tool_names: None,
            }),
        }
    }

    /// Whether a call may go to the backend now: always with a closed circuit; an open one
    /// lets one trial through once `circuitOpenMs` has passed (half-open), none before.
    pub fn admit(&self, now: Instant) -> bool {
        if !self.policy.breaker_enabled {
            return true;
        }
        let mut s = lock(&self.inner);
        match s.circuit {
            Circuit::Closed => true,
            // A trial that never reported back (its caller went away) does not hold the
            // circuit half-open for ever: another is let through after `circuitOpenMs`.
            Circuit::HalfOpen => {
                let stale = s
                    .opened_at
                    .is_none_or(|at| now.duration_since(at) >= self.policy.open_for);
                if stale {
                    s.opened_at = Some(now);
                }
                stale
            }
            Circuit::Open => {
                let due = s
                    .opened_at
                    .is_none_or(|at| now.duration_since(at) >= self.policy.open_for);
                if due && !s.trial_out {
                    s.circuit = Circuit::HalfOpen;
                    s.trial_out = true;
                    s.opened_at = Some(now);
                    s.circuit_changed = Some(SystemTime::now());
                }
                due && s.trial_out && s.circuit == Circuit::HalfOpen
            }
        }
    }

    /// A call or check reached the backend and it answered. True when this closed the circuit.
    pub fn succeeded(&self) -> bool {
        let mut s = lock(&self.inner);
        s.failures = 0;
        s.trial_out = false;
        if s.circuit != Circuit::Closed {
            s.circuit = Circuit::Closed;
            s.opened_at = None;
            s.circuit_changed = Some(SystemTime::now());
            return true;
        }
        false
    }

    /// A call or check failed (unreachable, timed out, a broken answer). True when this opened
    /// the circuit.
    pub fn failed(&self, now: Instant, why: &str) -> bool {
        let mut s = lock(&self.inner);
        s.failures = s.failures.saturating_add(1);
        s.message = Some(why.to_owned());
        s.trial_out = false;
        if !self.policy.breaker_enabled {
            return false;
        }
        let opens = match s.circuit {
            Circuit::HalfOpen => true,
            Circuit::Closed => s.failures >= self.policy.failure_threshold,
            Circuit::Open => {
                s.opened_at = Some(now);
                false
            }
        };
        if opens {
            s.circuit = Circuit::Open;
            s.opened_at = Some(now);
            s.circuit_changed = Some(SystemTime::now());
        }
        opens
    }

    /// Records a health check; true when the backend's tools changed for clients (it became
    /// usable or unusable, or its tool set changed).
    pub fn checked(&self, outcome: Result<Checked, CheckFailed>) -> bool {
        let mut s = lock(&self.inner);
        let before = (usable(&s), s.tool_names.clone());
        s.last_check = Some(SystemTime::now());
        match outcome {
            Ok(c) => {
                s.health = Health::Ready;
                s.check_failures = 0;
                s.message = None;
                s.revision = Some(c.revision);
                s.tool_names = Some(c.tool_names);
            }
            Err(CheckFailed {
                why,
                unauthenticated,
            }) => {
                s.check_failures = s.check_failures.saturating_add(1);
                s.health = if unauthenticated {
                    Health::Unauthenticated
                } else if s.check_failures >= self.policy.unhealthy_threshold {
                    Health::Unavailable
                } else {
                    Health::Degraded
                };
                s.message = Some(why);
                if matches!(s.health, Health::Unavailable | Health::Unauthenticated) {
                    s.tool_names = None;
                }
            }
        }
        let after = (usable(&s), s.tool_names.clone());
        before.0 != after.0 || (after.0 && before.1.is_some() && before.1 != after.1)
    }

    /// A circuit that opened or closed outside a check changes what clients can use too.
    pub fn is_usable(&self) -> bool {
        usable(&lock(&self.inner))
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = lock(&self.inner);
        let health =
            if s.circuit == Circuit::Open && matches!(s.health, Health::Ready | Health::Degraded) {
                Health::Unavailable
            } else {
                s.health
            };
        Snapshot {
            health,
            circuit: s.circuit,
            circuit_changed: s.circuit_changed,
            check_failures: s.check_failures,
            last_check: s.last_check,
            message: (health != Health::Ready)
                .then(|| s.message.clone())
                .flatten(),
            revision: s.revision.clone(),
            tool_count: s.tool_names.as_ref().map(|t| t.len() as u32),
        }
    }
}

fn usable(s: &Inner) -> bool {
    s.circuit != Circuit::Open && !matches!(s.health, Health::Unavailable | Health::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_open_half_open_closed() {
        let b = BackendState::new(Policy {
            breaker_enabled: true,
            failure_threshold: 2,
            open_for: Duration::from_secs(10),
            unhealthy_threshold: 1,
        });
        let t0 = Instant::now();
        assert!(b.admit(t0));
        assert!(!b.failed(t0, "refused"));
        assert!(b.failed(t0, "refused"), "the second failure in a row opens");
        assert!(!b.admit(t0 + Duration::from_secs(9)), "open: fails fast");
        assert!(b.admit(t0 + Duration::from_secs(10)), "one trial when due");
        assert_eq!(b.snapshot().circuit, Circuit::HalfOpen);
        assert!(!b.admit(t0 + Duration::from_secs(10)), "only one trial");
        assert!(
            b.failed(t0 + Duration::from_secs(10), "still down"),
            "a failed trial reopens"
        );
        assert!(!b.admit(t0 + Duration::from_secs(19)));
        assert!(b.admit(t0 + Duration::from_secs(20)));
        assert!(b.succeeded(), "a good trial closes");
        assert!(b.admit(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn health_changes_are_reported_once() {
        let b = BackendState::new(Policy {
            breaker_enabled: false,
            failure_threshold: 1,
            open_for: Duration::from_secs(1),
            unhealthy_threshold: 2,
        });
        let ok = |names: &[&str]| {
            Ok(Checked {
                revision: "2025-06-18".into(),
                tool_names: names.iter().map(|n| n.to_string()).collect(),
            })
        };
        assert!(
            !b.checked(ok(&["a"])),
            "unknown to ready with tools: usable before, too"
        );
        assert!(!b.checked(ok(&["a"])));
        assert!(b.checked(ok(&["a", "b"])), "the tool set changed");
        assert!(!b.checked(Err("down".into())), "degraded is still usable");
        assert_eq!(b.snapshot().health, Health::Degraded);
        assert!(b.checked(Err("down".into())), "unavailable");
        let s = b.snapshot();
        assert_eq!(
            (s.health, s.message.as_deref()),
            (Health::Unavailable, Some("down"))
        );
        assert!(b.checked(ok(&["a", "b"])), "back");
        let refused = CheckFailed {
            why: "the backend answered HTTP 401".into(),
            unauthenticated: true,
        };
        assert!(b.checked(Err(refused)), "a refused credential: at once");
        assert_eq!(b.snapshot().health, Health::Unauthenticated);
        assert!(!b.is_usable());
    }
}
