//! How the messages read from connections reach the SIP workers: in order per connection, on
//! whichever worker is free. Each connection has a mailbox; a mailbox with messages waits in
//! one shared queue of ready mailboxes, and only one worker at a time takes from it (it is
//! back in the queue only once that worker is done with its message). So a connection's
//! messages are handled one after the other, in the order they came (a 180 before the 200
//! behind it), as OpenSIPS hands a connection to one worker at a time, and no connection waits
//! for a busy worker while another is idle.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::stream::Inbound;

/// The messages of one connection not yet handled.
#[derive(Debug, Default)]
pub struct Mailbox {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    msgs: VecDeque<Inbound>,
    /// In the ready queue, or being handled by a worker.
    taken: bool,
}

impl Mailbox {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a queue and a flag: still usable after a panic elsewhere.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The shared queue of ready mailboxes: the I/O side puts messages in, workers take turns.
#[derive(Debug, Clone)]
pub struct Inboxes {
    tx: crossbeam_channel::Sender<Arc<Mailbox>>,
    rx: crossbeam_channel::Receiver<Arc<Mailbox>>,
}

/// A worker's turn at a connection: its next message. Give it back with [`Inboxes::done`].
#[derive(Debug)]
pub struct Turn {
    pub msg: Inbound,
    mailbox: Arc<Mailbox>,
}

impl Default for Inboxes {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Inboxes { tx, rx }
    }
}

impl Inboxes {
    pub fn new() -> Inboxes {
        Inboxes::default()
    }

    /// Queues `msg` in `mailbox`; the mailbox becomes ready unless a worker has it already.
    pub fn push(&self, mailbox: &Arc<Mailbox>, msg: Inbound) {
        let mut state = mailbox.state();
        state.msgs.push_back(msg);
        if !state.taken {
            state.taken = true;
            drop(state);
            let _ = self.tx.send(Arc::clone(mailbox));
        }
    }

    /// The next message of some ready connection, waiting up to `wait`.
    pub fn next(&self, wait: Duration) -> Option<Turn> {
        let mailbox = self.rx.recv_timeout(wait).ok()?;
        Self::turn(mailbox)
    }

    /// The next message of some ready connection, without waiting (draining at stop).
    pub fn try_next(&self) -> Option<Turn> {
        let mailbox = self.rx.try_recv().ok()?;
        Self::turn(mailbox)
    }

    fn turn(mailbox: Arc<Mailbox>) -> Option<Turn> {
        let msg = mailbox.state().msgs.pop_front()?;
        Some(Turn { msg, mailbox })
    }

    /// The worker is done with its turn: the connection is ready again if more came meanwhile.
    pub fn done(&self, turn: Turn) {
        let mut state = turn.mailbox.state();
        if state.msgs.is_empty() {
            state.taken = false;
        } else {
            drop(state);
            let _ = self.tx.send(turn.mailbox);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Proto;
    use bytes::Bytes;

    fn msg(conn: u64, n: u8) -> Inbound {
        Inbound {
            data: Bytes::from(vec![n]),
            proto: Proto::Tcp,
            source: "127.0.0.1:1".parse().unwrap(),
            local: "127.0.0.1:2".parse().unwrap(),
            conn,
            proxy: None,
            closed: false,
            alias_mode: None,
        }
    }

    #[test]
    fn one_connection_is_handled_by_one_worker_at_a_time_in_order() {
        let inboxes = Inboxes::new();
        let (a, b) = (Arc::new(Mailbox::default()), Arc::new(Mailbox::default()));
        inboxes.push(&a, msg(1, 1));
        inboxes.push(&a, msg(1, 2));
        inboxes.push(&b, msg(2, 1));
        let t1 = inboxes.try_next().unwrap();
        assert_eq!((t1.msg.conn, &t1.msg.data[..]), (1, &[1][..]));
        // Connection 1 is taken: the next turn is connection 2's, not 1's second message.
        let t2 = inboxes.try_next().unwrap();
        assert_eq!(t2.msg.conn, 2);
        assert!(inboxes.try_next().is_none());
        inboxes.done(t2);
        inboxes.done(t1);
        let t3 = inboxes.try_next().unwrap();
        assert_eq!((t3.msg.conn, &t3.msg.data[..]), (1, &[2][..]));
        inboxes.done(t3);
        assert!(inboxes.try_next().is_none());
        // Empty and released: a new message makes it ready again.
        inboxes.push(&a, msg(1, 3));
        assert_eq!(&inboxes.try_next().unwrap().msg.data[..], &[3][..]);
    }

    #[test]
    fn many_workers_keep_each_connections_order() {
        let inboxes = Inboxes::new();
        let boxes: Vec<Arc<Mailbox>> = (0..4).map(|_| Arc::new(Mailbox::default())).collect();
        let seen = Arc::new(Mutex::new(vec![Vec::new(); 4]));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (inboxes, seen) = (inboxes.clone(), Arc::clone(&seen));
                std::thread::spawn(move || {
                    while let Some(t) = inboxes.next(Duration::from_millis(300)) {
                        seen.lock().unwrap()[t.msg.conn as usize].push(t.msg.data[0]);
                        inboxes.done(t);
                    }
                })
            })
            .collect();
        for n in 0..200u8 {
            for (c, b) in boxes.iter().enumerate() {
                inboxes.push(b, msg(c as u64, n));
            }
        }
        for w in workers {
            w.join().unwrap();
        }
        let want: Vec<u8> = (0..200).collect();
        for got in seen.lock().unwrap().iter() {
            assert_eq!(got, &want);
        }
    }
}
