//! One registration of ours at an upstream registrar and its state machine (OpenSIPS
//! `uac_registrant`): what to send when, and what a final reply moves it to. No I/O: time is
//! an input (unix seconds) and the sends are returned.

/// The states, by the names MI and the events show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotRegistered,
    Registering,
    Authenticating,
    Registered,
    RegisterTimeout,
    InternalError,
    WrongCredentials,
    RegistrarError,
    Unregistering,
    AuthenticatingUnregister,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::NotRegistered => "NOT_REGISTERED_STATE",
            State::Registering => "REGISTERING_STATE",
            State::Authenticating => "AUTHENTICATING_STATE",
            State::Registered => "REGISTERED_STATE",
            State::RegisterTimeout => "REGISTER_TIMEOUT_STATE",
            State::InternalError => "INTERNAL_ERROR_STATE",
            State::WrongCredentials => "WRONG_CREDENTIALS_STATE",
            State::RegistrarError => "REGISTRAR_ERROR_STATE",
            State::Unregistering => "UNREGISTERING_STATE",
            State::AuthenticatingUnregister => "AUTHENTICATING_UNREGISTER_STATE",
        }
    }

    /// The event raised on entering it (none for NOT_REGISTERED).
    pub fn event(self) -> Option<&'static str> {
        Some(match self {
            State::NotRegistered => return None,
            State::Registering => "E_REGISTRANT_REGISTERING",
            State::Authenticating => "E_REGISTRANT_AUTHENTICATING",
            State::Registered => "E_REGISTRANT_REGISTERED",
            State::RegisterTimeout => "E_REGISTRANT_REGISTER_TIMEOUT",
            State::InternalError => "E_REGISTRANT_INTERNAL_ERROR",
            State::WrongCredentials => "E_REGISTRANT_WRONG_CREDENTIALS",
            State::RegistrarError => "E_REGISTRANT_REGISTRAR_ERROR",
            State::Unregistering => "E_REGISTRANT_UNREGISTERING",
            State::AuthenticatingUnregister => "E_REGISTRANT_AUTHENTICATING_UNREGISTER",
        })
    }

    fn waiting_for_reply(self) -> bool {
        matches!(
            self,
            State::Registering
                | State::Authenticating
                | State::Unregistering
                | State::AuthenticatingUnregister
        )
    }
}

/// A row of the `registrant` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub registrar: String,
    pub proxy: Option<String>,
    pub aor: String,
    pub third_party: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub binding: String,
    pub binding_params: String,
    pub expiry: u32,
    pub socket: Option<String>,
    pub enabled: bool,
}

/// What to send for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The REGISTER asks for this many seconds (0: unregister).
    pub expires: u32,
    /// The answer to the challenge of the reply before: (header name, value).
    pub auth: Option<(String, String)>,
}

/// A registration and where it stands.
#[derive(Debug, Clone)]
pub struct Record {
    pub cfg: Config,
    pub state: State,
    /// The expiry asked for (a 423 raises it).
    pub wanted: u32,
    /// The expiry granted (the refresh timing base).
    pub expires: u32,
    pub last_sent: i64,
    /// When to act next (register again, retry).
    pub timeout: i64,
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
}

/// The tuning the module parameters give.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub timer_interval: i64,
    pub retry_interval: i64,
    pub percentage: i64,
}

impl Record {
    pub fn new(cfg: Config, ids: (String, String)) -> Record {
        Record {
            wanted: cfg.expiry,
            expires: cfg.expiry,
            cfg,
            state: State::NotRegistered,
            last_sent: 0,
            timeout: 0,
            call_id: ids.0,
            from_tag: ids.1,
            cseq: 0,
        }
    }

    /// `aor`, `binding`, `registrar`: how MI and a reload find it.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.cfg.aor, &self.cfg.binding, &self.cfg.registrar)
    }

    /// OpenSIPS' refresh time (the timer acts `timer_interval` before it). OpenSIPS checks a
    /// record once per `timer_interval`; rsips checks every second, so a granted expiry that
    /// short could otherwise re-register every second: the refresh never comes before half
    /// the granted time.
    fn refresh_at(&self, now: i64, t: &Timing) -> i64 {
        let opensips = now + i64::from(self.expires) * t.percentage / 100 - t.timer_interval;
        opensips.max(now + (i64::from(self.expires) / 2).max(1) + t.timer_interval)
    }

    /// OpenSIPS' retry time, never sooner than half the wait (and a second) from now.
    fn retry_at(&self, now: i64, t: &Timing) -> i64 {
        let wait = if t.retry_interval > 0 {
            t.retry_interval
        } else {
            i64::from(self.expires) * t.percentage / 100
        };
        now + (wait - t.timer_interval).max(wait / 2).max(1)
    }

    /// The timer's look at it: what to send now, if anything. `fresh` gives new Call-ID and
    /// tag for a record starting over after an error.
    pub fn due(
        &mut self,
        now: i64,
        t: &Timing,
        fresh: impl FnOnce() -> (String, String),
    ) -> Option<Send> {
        match self.state {
            s if s.waiting_for_reply() => None,
            State::Registered if now + t.timer_interval < self.timeout => None,
            State::Registered | State::NotRegistered => self.register(now),
            _ if now < self.timeout => None,
            _ if self.cfg.enabled => {
                (self.call_id, self.from_tag) = fresh();
                self.cseq = 0;
                self.register(now)
            }
            _ => {
                self.state = State::Unregistering;
                self.next_send(0, None)
            }
        }
    }

    fn register(&mut self, now: i64) -> Option<Send> {
        if !self.cfg.enabled {
            return None;
        }
        self.last_sent = now;
        self.state = State::Registering;
        self.next_send(self.wanted, None)
    }

    fn next_send(&mut self, expires: u32, auth: Option<(String, String)>) -> Option<Send> {
        self.cseq += 1;
        Some(Send { expires, auth })
    }

    /// A send that could not go out.
    pub fn send_failed(&mut self, now: i64, t: &Timing) {
        self.state = State::InternalError;
        self.timeout = self.retry_at(now, t);
    }

    /// A final reply (`granted`: the expiry a 200 gives our binding; `min_expires` a 423's;
    /// `answer` builds the response to a 401/407's challenge). Returns what to send next.
    pub fn reply(
        &mut self,
        code: u16,
        now: i64,
        t: &Timing,
        granted: Option<u32>,
        min_expires: Option<u32>,
        answer: impl FnOnce(&Config) -> Option<(String, String)>,
    ) -> Option<Send> {
        let unregistering = matches!(
            self.state,
            State::Unregistering | State::AuthenticatingUnregister
        );
        match code {
            200..=299 if unregistering => {
                if self.cfg.enabled {
                    return self.register(now);
                }
                self.state = State::NotRegistered;
                self.timeout = 0;
                None
            }
            200..=299 if !self.cfg.enabled => {
                self.state = State::Unregistering;
                self.next_send(0, None)
            }
            200..=299 => {
                if let Some(g) = granted.filter(|g| *g > 0) {
                    self.expires = g;
                }
                self.state = State::Registered;
                self.timeout = self.refresh_at(now, t);
                None
            }
            401 | 407 => {
                if matches!(
                    self.state,
                    State::Authenticating | State::AuthenticatingUnregister
                ) || self.cfg.username.is_none()
                    || self.cfg.password.is_none()
                {
                    self.state = State::WrongCredentials;
                    self.timeout = self.retry_at(now, t);
                    return None;
                }
                let Some(auth) = answer(&self.cfg) else {
                    self.state = State::InternalError;
                    self.timeout = self.retry_at(now, t);
                    return None;
                };
                let expires = if unregistering { 0 } else { self.wanted };
                self.state = if unregistering {
                    State::AuthenticatingUnregister
                } else {
                    State::Authenticating
                };
                self.next_send(expires, Some(auth))
            }
            423 => match min_expires.filter(|m| *m >= 5) {
                Some(m) => {
                    self.wanted = m;
                    self.state = State::Registering;
                    self.next_send(m, None)
                }
                None => {
                    self.state = State::RegistrarError;
                    self.timeout = self.retry_at(now, t);
                    None
                }
            },
            408 => {
                self.state = State::RegisterTimeout;
                self.timeout = self.retry_at(now, t);
                None
            }
            300..=399 => {
                self.state = State::InternalError;
                self.timeout = self.retry_at(now, t);
                None
            }
            _ => {
                self.state = State::RegistrarError;
                self.timeout = self.retry_at(now, t);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        timer_interval: 10,
        retry_interval: 0,
        percentage: 100,
    };

    fn record() -> Record {
        Record::new(
            Config {
                registrar: "sip:reg.example".into(),
                proxy: None,
                aor: "sip:me@reg.example".into(),
                third_party: None,
                username: Some("me".into()),
                password: Some("pw".into()),
                binding: "sip:me@127.0.0.1".into(),
                binding_params: String::new(),
                expiry: 60,
                socket: None,
                enabled: true,
            },
            ("c1".into(), "t1".into()),
        )
    }

    fn fresh() -> (String, String) {
        ("c2".into(), "t2".into())
    }

    #[test]
    fn register_answer_the_challenge_and_refresh_before_expiry() {
        let mut r = record();
        let s = r.due(1000, &T, fresh).unwrap_or_else(|| unreachable!());
        assert_eq!((s.expires, r.cseq, r.state), (60, 1, State::Registering));
        assert_eq!(r.due(1001, &T, fresh), None, "waiting for the reply");
        let auth = || Some(("Authorization".to_owned(), "Digest …".to_owned()));
        let s = r
            .reply(401, 1001, &T, None, None, |_| auth())
            .unwrap_or_else(|| unreachable!());
        assert_eq!((s.expires, r.cseq, r.state), (60, 2, State::Authenticating));
        assert_eq!(r.reply(200, 1002, &T, Some(40), None, |_| None), None);
        assert_eq!(
            (r.state, r.expires, r.timeout),
            (State::Registered, 40, 1032)
        );
        // Refreshed at timeout − timer_interval, asking for what the row says again, same
        // Call-ID, next CSeq.
        assert_eq!(r.due(1021, &T, fresh), None);
        let s = r.due(1022, &T, fresh).unwrap_or_else(|| unreachable!());
        assert_eq!((s.expires, r.cseq, r.call_id.as_str()), (60, 3, "c1"));
    }

    #[test]
    fn a_short_granted_expiry_does_not_refresh_every_second() {
        let mut r = record();
        r.due(1000, &T, fresh);
        // 10 s granted with a 10 s timer_interval: OpenSIPS' formula is due at once; rsips
        // waits half the granted time.
        r.reply(200, 1000, &T, Some(10), None, |_| None);
        assert_eq!(r.due(1001, &T, fresh), None);
        assert_eq!(r.due(1004, &T, fresh), None);
        assert!(r.due(1005, &T, fresh).is_some());
        // A redirect waits like any failure.
        r.reply(302, 1005, &T, None, None, |_| None);
        assert_eq!(
            (r.state, r.due(1006, &T, fresh)),
            (State::InternalError, None)
        );
    }

    #[test]
    fn failures_wait_then_start_over_with_a_new_call_id() {
        let mut r = record();
        r.due(1000, &T, fresh);
        r.reply(401, 1000, &T, None, None, |_| {
            Some(("A".into(), "x".into()))
        });
        // A second challenge: the credentials are wrong.
        assert_eq!(r.reply(401, 1001, &T, None, None, |_| None), None);
        assert_eq!((r.state, r.timeout), (State::WrongCredentials, 1051));
        assert_eq!(r.due(1050, &T, fresh), None);
        let s = r.due(1051, &T, fresh).unwrap_or_else(|| unreachable!());
        assert_eq!((s.expires, r.cseq, r.call_id.as_str()), (60, 1, "c2"));
        // 423 with Min-Expires: asked again at once for that long.
        let s = r
            .reply(423, 1052, &T, None, Some(300), |_| None)
            .unwrap_or_else(|| unreachable!());
        assert_eq!((s.expires, r.wanted), (300, 300));
        assert_eq!(r.reply(408, 1053, &T, None, None, |_| None), None);
        assert_eq!(r.state, State::RegisterTimeout);
        assert_eq!(r.reply(503, 1053, &T, None, None, |_| None), None);
        assert_eq!(r.state, State::RegistrarError);
    }

    #[test]
    fn a_disabled_record_unregisters() {
        let mut r = record();
        r.due(1000, &T, fresh);
        r.reply(200, 1000, &T, None, None, |_| None);
        r.cfg.enabled = false;
        r.timeout = 0;
        r.state = State::RegistrarError;
        let s = r.due(1000, &T, fresh).unwrap_or_else(|| unreachable!());
        assert_eq!((s.expires, r.state), (0, State::Unregistering));
        assert_eq!(r.reply(200, 1001, &T, None, None, |_| None), None);
        assert_eq!(r.state, State::NotRegistered);
    }
}
