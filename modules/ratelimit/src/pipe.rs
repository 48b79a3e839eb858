//! One rate-limiting pipe and the algorithms that decide on it (OpenSIPS `ratelimit`):
//! TAILDROP (a counter per `timer_interval`), RED (random early detection: only every n-th
//! request passes once the last interval went over), SBT (a sliding window of slots),
//! NETWORK (the bytes waiting in the receive queues) and FEEDBACK (a PID controller on the
//! CPU load, the same drop rate for every FEEDBACK pipe). No I/O here: the time and the
//! loads are inputs.

/// The algorithms, by their OpenSIPS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Taildrop,
    Red,
    Feedback,
    Network,
    Sbt,
}

impl Algo {
    /// Case-insensitive, as OpenSIPS matches them.
    pub fn parse(name: &str) -> Option<Algo> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "TAILDROP" => Algo::Taildrop,
            "RED" => Algo::Red,
            "FEEDBACK" => Algo::Feedback,
            "NETWORK" => Algo::Network,
            "SBT" => Algo::Sbt,
            _ => return None,
        })
    }

    /// OpenSIPS' number for the algorithm (`rl_algo_t`), as replication carries it.
    pub fn code(self) -> i32 {
        match self {
            Algo::Taildrop => 1,
            Algo::Red => 2,
            Algo::Feedback => 3,
            Algo::Network => 4,
            Algo::Sbt => 5,
        }
    }

    /// The algorithm of a replication code (`None`: NOP or unknown).
    pub fn from_code(code: i32) -> Option<Algo> {
        Some(match code {
            1 => Algo::Taildrop,
            2 => Algo::Red,
            3 => Algo::Feedback,
            4 => Algo::Network,
            5 => Algo::Sbt,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algo::Taildrop => "TAILDROP",
            Algo::Red => "RED",
            Algo::Feedback => "FEEDBACK",
            Algo::Network => "NETWORK",
            Algo::Sbt => "SBT",
        }
    }
}

/// The module's settings the algorithms use.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `timer_interval` (s).
    pub interval: i64,
    /// `limit_per_interval`: limits count per interval, not per second (TAILDROP, RED).
    pub per_interval: bool,
    /// `window_size` (s) and `slot_period` (ms), for SBT.
    pub window_ms: i64,
    pub slot_ms: i64,
}

impl Settings {
    /// What a TAILDROP or RED limit allows per interval.
    fn allowed(&self, limit: i64) -> i64 {
        if self.per_interval {
            limit
        } else {
            limit.saturating_mul(self.interval)
        }
    }

    fn slots(&self) -> usize {
        usize::try_from(self.window_ms / self.slot_ms.max(1))
            .unwrap_or(1)
            .max(1)
    }
}

/// SBT's window: a count per slot of `slot_period` ms.
#[derive(Debug, Clone)]
pub struct Window {
    pub slots: Vec<i64>,
    /// When the current slot began (ms), `None` while unused.
    start: Option<i64>,
    start_idx: usize,
}

impl Window {
    fn new(n: usize) -> Window {
        Window {
            slots: vec![0; n],
            start: None,
            start_idx: 0,
        }
    }

    /// Adds `u` at `now_ms` (0 only rolls the window on) and returns the window's total.
    fn update(&mut self, s: &Settings, now_ms: i64, u: i64) -> i64 {
        let n = self.slots.len();
        let slot = s.slot_ms.max(1);
        let idx = usize::try_from(now_ms.rem_euclid(slot * n as i64) / slot).unwrap_or(0) % n;
        match self.start {
            Some(start) if now_ms - start < s.window_ms => {
                if now_ms - start >= slot {
                    // The slots passed over since are empty.
                    let mut i = (self.start_idx + 1) % n;
                    while i != idx {
                        self.slots[i] = 0;
                        i = (i + 1) % n;
                    }
                    self.slots[idx] = u;
                    self.start = Some(now_ms);
                    self.start_idx = idx;
                } else {
                    self.slots[self.start_idx] += u;
                }
            }
            _ => {
                self.slots.iter_mut().for_each(|c| *c = 0);
                self.slots[idx] = u;
                self.start = Some(now_ms);
                self.start_idx = idx;
            }
        }
        self.slots.iter().sum()
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|c| *c = 0);
        self.start = None;
    }

    /// Whether the window has been used at all.
    pub fn used(&self) -> bool {
        self.start.is_some()
    }
}

/// Replicate the pipe over the cluster (`/b`).
pub const REPLICATE_BIN: u32 = 1 << 0;
/// Replicate the pipe through cachedb (`/r`).
pub const REPLICATE_CACHE: u32 = 1 << 1;

/// What another node (or, over a bridge, another cluster) counted in a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The node id, or the cluster id for a count from a bridge.
    pub id: i32,
    pub bridged: bool,
    pub counter: i64,
    /// When it was last heard (s).
    pub update: i64,
}

/// One pipe.
#[derive(Debug, Clone)]
pub struct Pipe {
    pub algo: Algo,
    pub limit: i64,
    /// Requests counted in this interval (SBT: in the window).
    pub counter: i64,
    /// The counter at the last timer tick (what `ratelimit:list` shows).
    pub last_counter: i64,
    /// RED: let every `load`-th request through; NETWORK: -1 over the limit, 1 under.
    load: i64,
    /// When `rl_check` or a replicated count last used it (s).
    pub last_used: i64,
    /// When `rl_check` last used it (s), for `expire_time`.
    pub last_local_used: i64,
    pub window: Option<Window>,
    /// [`REPLICATE_BIN`], [`REPLICATE_CACHE`].
    pub flags: u32,
    /// This node's count of the last interval (what replication sends for most algorithms).
    pub my_last_counter: i64,
    /// The other nodes' counts.
    pub remote: Vec<Remote>,
    /// A zero count is replicated only this many more times.
    pub repl_zero_cnt: i32,
    pub br_repl_zero_cnt: i32,
}

impl Pipe {
    pub fn new(algo: Algo, limit: i64, s: &Settings, now: i64) -> Pipe {
        Pipe {
            algo,
            limit,
            counter: 0,
            last_counter: 0,
            load: 0,
            last_used: now,
            last_local_used: now,
            window: (algo == Algo::Sbt).then(|| Window::new(s.slots())),
            flags: 0,
            my_last_counter: 0,
            remote: Vec::new(),
            repl_zero_cnt: 0,
            br_repl_zero_cnt: 0,
        }
    }

    /// The other nodes' counts heard in the last `expire` s (`bridged_expire` for those of
    /// other clusters; `local_only` leaves those out); older ones are zeroed.
    pub fn remote_total(
        &mut self,
        now: i64,
        expire: i64,
        bridged_expire: i64,
        local_only: bool,
    ) -> i64 {
        let mut sum = 0i64;
        for r in self
            .remote
            .iter_mut()
            .filter(|r| !(local_only && r.bridged))
        {
            let ttl = if r.bridged { bridged_expire } else { expire };
            if r.update + ttl < now {
                r.counter = 0;
            } else {
                sum = sum.saturating_add(r.counter);
            }
        }
        sum
    }

    /// Another node's count (`bridged`: another cluster's).
    pub fn set_remote(&mut self, id: i32, bridged: bool, counter: i64, now: i64) {
        match self
            .remote
            .iter_mut()
            .find(|r| r.id == id && r.bridged == bridged)
        {
            Some(r) => {
                r.counter = counter;
                r.update = now;
            }
            None => self.remote.insert(
                0,
                Remote {
                    id,
                    bridged,
                    counter,
                    update: now,
                },
            ),
        }
    }

    /// Counts one request and decides: `true` lets it through. `drop_rate` is FEEDBACK's
    /// percentage, `remote` what the other nodes counted (added to ours, as OpenSIPS does).
    pub fn check(&mut self, s: &Settings, now_ms: i64, drop_rate: i64, remote: i64) -> bool {
        let count = match &mut self.window {
            Some(w) => {
                self.counter = w.update(s, now_ms, 1);
                self.counter
            }
            None => {
                self.counter += 1;
                self.counter
            }
        }
        .saturating_add(remote);
        match self.algo {
            Algo::Taildrop => count <= s.allowed(self.limit) || self.limit < 0,
            Algo::Sbt => count <= self.limit || self.limit < 0,
            Algo::Red => self.load == 0 || count % self.load == 0,
            Algo::Network => self.load >= 0,
            Algo::Feedback => PERMUTATION[(count.rem_euclid(100)) as usize] >= drop_rate,
        }
    }

    /// The counter now (SBT: the window rolled on to `now_ms`).
    pub fn current(&mut self, s: &Settings, now_ms: i64) -> i64 {
        if let Some(w) = &mut self.window {
            self.counter = w.update(s, now_ms, 0);
        }
        self.counter
    }

    /// `rl_dec_count`: one request less (never below zero, except in an SBT slot).
    pub fn decrement(&mut self, s: &Settings, now_ms: i64) {
        match &mut self.window {
            Some(w) => self.counter = w.update(s, now_ms, -1),
            None => self.counter = (self.counter - 1).max(0),
        }
    }

    /// `rl_reset_count`: the count starts again.
    pub fn reset(&mut self) {
        self.counter = 0;
        if let Some(w) = &mut self.window {
            w.clear();
        }
    }

    /// The timer tick: RED's and NETWORK's loads for the next interval, and the counter moves
    /// to `last_counter`.
    pub fn tick(&mut self, s: &Settings, network_bytes: i64) {
        match self.algo {
            Algo::Network => self.load = if network_bytes > self.limit { -1 } else { 1 },
            Algo::Red if self.limit != 0 && s.interval != 0 => {
                let allowed = s.allowed(self.limit);
                self.load = if allowed > 0 {
                    self.counter / allowed
                } else {
                    0
                };
            }
            _ => {}
        }
        self.last_counter = self.counter;
        self.counter = 0;
    }
}

/// FEEDBACK's controller: the CPU load against the set point, giving a drop rate (0–100 %).
#[derive(Debug, Clone)]
pub struct Pid {
    pub kp: f64,
    pub ki: f64,
    pub kd: f64,
    /// The FEEDBACK limit (percent of CPU), shared by every FEEDBACK pipe; 0 until one is made.
    pub limit: i64,
    int_err: f64,
    last_err: f64,
    pub drop_rate: i64,
}

impl Default for Pid {
    fn default() -> Pid {
        Pid {
            kp: 0.0,
            ki: -25.0,
            kd: 0.0,
            limit: 0,
            int_err: 0.0,
            last_err: 0.0,
            drop_rate: 0,
        }
    }
}

impl Pid {
    /// One step with the CPU load (0–1) of the last interval.
    pub fn update(&mut self, load: f64) {
        let setpoint = 0.01 * self.limit as f64;
        let err = setpoint - load;
        let dif = err - self.last_err;
        if self.int_err < 0.0 || err < 0.0 {
            self.int_err += err;
        }
        let out = self.kp * err + self.ki * self.int_err + self.kd * dif;
        self.last_err = err;
        self.drop_rate = if out > 0.0 { out as i64 } else { 0 };
    }
}

/// 0..99 in a fixed scattered order: FEEDBACK drops the requests whose count lands on a value
/// below its drop rate, spreading the drops over the interval.
const PERMUTATION: [i64; 100] = permutation();

const fn permutation() -> [i64; 100] {
    // i × 37 mod 100 visits every value once (37 and 100 are coprime).
    let mut out = [0i64; 100];
    let mut i = 0;
    while i < 100 {
        out[i] = (i as i64 * 37) % 100;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        interval: 10,
        per_interval: false,
        window_ms: 10_000,
        slot_ms: 200,
    };

    #[test]
    fn taildrop_allows_the_limit_per_second_of_an_interval() {
        let mut p = Pipe::new(Algo::Taildrop, 2, &S, 0);
        let passed = (0..25).filter(|_| p.check(&S, 0, 0, 0)).count();
        assert_eq!(passed, 20);
        p.tick(&S, 0);
        assert_eq!((p.last_counter, p.counter), (25, 0));
        assert!(p.check(&S, 0, 0, 0));
        let per = Settings {
            per_interval: true,
            ..S
        };
        let mut p = Pipe::new(Algo::Taildrop, 2, &per, 0);
        assert_eq!((0..5).filter(|_| p.check(&per, 0, 0, 0)).count(), 2);
        let mut zero = Pipe::new(Algo::Taildrop, 0, &S, 0);
        assert!(!zero.check(&S, 0, 0, 0));
    }

    #[test]
    fn red_lets_every_nth_through_after_an_interval_over_the_limit() {
        let mut p = Pipe::new(Algo::Red, 1, &S, 0);
        // The first interval: everything passes, 30 against 10 allowed.
        assert!((0..30).all(|_| p.check(&S, 0, 0, 0)));
        p.tick(&S, 0);
        // load 3: one in three passes.
        assert_eq!((0..30).filter(|_| p.check(&S, 0, 0, 0)).count(), 10);
    }

    #[test]
    fn sbt_counts_over_a_sliding_window() {
        let s = Settings {
            window_ms: 1_000,
            slot_ms: 100,
            ..S
        };
        let mut p = Pipe::new(Algo::Sbt, 3, &s, 0);
        assert!(p.check(&s, 0, 0, 0));
        assert!(p.check(&s, 150, 0, 0));
        assert!(p.check(&s, 350, 0, 0));
        assert!(!p.check(&s, 400, 0, 0), "4 in the window");
        // 1,050 ms: the first slot has left the window.
        assert_eq!(p.current(&s, 1_050), 3, "{:?}", p.window);
        // A whole window later everything has left.
        assert_eq!(p.current(&s, 2_500), 0);
        p.decrement(&s, 2_500);
        assert_eq!(p.counter, -1);
        p.reset();
        assert_eq!(p.current(&s, 2_600), 0);
    }

    #[test]
    fn network_follows_the_waiting_bytes_of_the_last_tick() {
        let mut p = Pipe::new(Algo::Network, 1_000, &S, 0);
        assert!(p.check(&S, 0, 0, 0));
        p.tick(&S, 5_000);
        assert!(!p.check(&S, 0, 0, 0));
        p.tick(&S, 10);
        assert!(p.check(&S, 0, 0, 0));
    }

    #[test]
    fn feedback_drops_its_rate_in_percent() {
        let mut p = Pipe::new(Algo::Feedback, 50, &S, 0);
        assert!((0..100).all(|_| p.check(&S, 0, 0, 0)));
        assert_eq!((0..100).filter(|_| p.check(&S, 0, 30, 0)).count(), 70);
        assert!((0..100).all(|_| !p.check(&S, 0, 100, 0)));
        let mut pid = Pid {
            limit: 50,
            ..Pid::default()
        };
        // Over the set point the integral goes negative and the drop rate up.
        pid.update(0.9);
        assert_eq!(pid.drop_rate, 10);
        pid.update(0.9);
        assert_eq!(pid.drop_rate, 20);
        // Under it, the rate comes down.
        pid.update(0.1);
        assert_eq!(pid.drop_rate, 10);
    }
}
