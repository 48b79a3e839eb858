//! The server runtime: UDP sockets read by `udp_workers` threads each, the stream transports
//! (TCP, TLS, WS, WSS) read by the I/O threads of `transport::stream` and handed to `tcp_workers`
//! threads. Every worker runs the compiled script over what it receives and sends what the script
//! queued. Malformed requests get a 400 naming the fault (or the RFC 3261 class: 416, 505);
//! malformed responses are dropped.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use engine::{MsgCtx, Outbound, Receipt, Script, Worker};
use transport::Proto;
use transport::stream::{Inbound, Listen, Streams};

/// Waits until the server is set up (`ready`), or stops.
fn wait_ready(ready: &AtomicBool, stop: &AtomicBool) {
    while !ready.load(Ordering::Acquire) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Running listeners and their workers (they stop when the shared flag is raised).
pub struct Server {
    workers: Vec<JoinHandle<()>>,
    pub streams: Option<Arc<Streams>>,
    pub tls: Option<Arc<transport::tls::TlsContext>>,
    /// What each thread does, for MI `core:ps`.
    pub processes: Vec<String>,
}

/// Where every outgoing message leaves: the UDP sockets and the stream transports.
pub struct Outlet {
    udp: Vec<(SocketAddr, UdpSocket)>,
    /// UDP sockets opened at run time (`sockets_mgm`).
    dynamic_udp: std::sync::RwLock<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    streams: Option<Arc<Streams>>,
}

impl Outlet {
    /// The run-time UDP socket bound to `from`, or with none given the first of the
    /// destination's address family.
    fn dynamic_udp_for(
        &self,
        from: Option<SocketAddr>,
        dest: SocketAddr,
    ) -> Option<Arc<UdpSocket>> {
        let list = self
            .dynamic_udp
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.iter()
            .find(|(a, _)| match from {
                Some(from) => *a == from,
                None => a.is_ipv4() == dest.is_ipv4(),
            })
            .map(|(_, s)| Arc::clone(s))
    }

    /// Sends one message. `receiving` is the UDP socket of the worker, the default for replies.
    fn send(&self, out: Outbound, receiving: Option<&UdpSocket>) {
        self.send_then(out, receiving, None);
    }

    /// Sends one message and reports the outcome to `done` (the stateless path logs it).
    fn send_then(&self, out: Outbound, receiving: Option<&UdpSocket>, done: Option<tm::SendDone>) {
        if out.proto == "udp" {
            let socket = match out.from {
                Some(from) => self.udp.iter().find(|(a, _)| *a == from).map(|(_, s)| s),
                None => receiving.or_else(|| {
                    self.udp
                        .iter()
                        .find(|(a, _)| a.is_ipv4() == out.dest.is_ipv4())
                        .map(|(_, s)| s)
                }),
            };
            let send = |socket: &UdpSocket| {
                if tracer::tapping()
                    && let Ok(local) = socket.local_addr()
                {
                    tracer::outgoing(&out.data, local, out.dest, out.proto);
                }
                socket
                    .send_to(&out.data, out.dest)
                    .map(|_| ())
                    .map_err(|e| format!("udp send to {}: {e}", out.dest))
            };
            let result = match socket {
                Some(socket) => send(socket),
                None => match self.dynamic_udp_for(out.from, out.dest) {
                    Some(socket) => send(&socket),
                    None => Err(format!("no udp socket to send to {}", out.dest)),
                },
            };
            if let Err(e) = &result {
                crate::logging::core(-1, e);
            }
            if let Some(done) = done {
                done(result);
            }
            return;
        }
        let (Some(streams), Some(proto)) = (&self.streams, Proto::parse(out.proto)) else {
            let e = format!("no {} socket to send to {}", out.proto, out.dest);
            crate::logging::core(-1, &e);
            if let Some(done) = done {
                done(Err(e));
            }
            return;
        };
        let dest = out.dest;
        if tracer::tapping() {
            // The connection's own address is not known here: the socket asked for, else the
            // first listener of the protocol.
            let local = out.from.or_else(|| {
                streams
                    .bound()
                    .iter()
                    .find(|(p, a)| *p == proto && a.is_ipv4() == dest.is_ipv4())
                    .map(|(_, a)| *a)
            });
            if let Some(local) = local {
                tracer::outgoing(&out.data, local, dest, out.proto);
            }
        }
        // Failures are logged; tm also hears of them (failover, 477).
        let done: transport::stream::Done = Box::new(move |outcome| {
            if !outcome.is_sent() {
                crate::logging::core(-1, &format!("{proto} send to {dest}: {outcome:?}"));
            }
            if let Some(done) = done {
                done(if outcome.is_sent() {
                    Ok(())
                } else {
                    Err(format!("{outcome:?}"))
                });
            }
        });
        streams.send_for(
            proto,
            out.conn,
            dest,
            out.from,
            out.origin,
            !out.no_new_conn,
            Bytes::from(out.data),
            Some(done),
        );
    }
}

/// The running script, replaceable at run time (MI `core:reload_routes`): workers notice a
/// new generation before their next message. Transactions keep the script they started in.
pub struct Scripts {
    current: std::sync::RwLock<Arc<Script>>,
    generation: std::sync::atomic::AtomicU64,
    /// The sockets `sockets_mgm` opens, shared by every script run (none without the module).
    dynamic: Option<Arc<engine::forward::DynamicSockets>>,
}

impl Scripts {
    pub fn new(script: Arc<Script>) -> Scripts {
        let dynamic = script
            .loads("sockets_mgm")
            .then(|| Arc::new(engine::forward::DynamicSockets::default()));
        if let Some(d) = &dynamic {
            script.attach_dynamic_sockets(Arc::clone(d));
        }
        Scripts {
            current: std::sync::RwLock::new(script),
            generation: std::sync::atomic::AtomicU64::new(0),
            dynamic,
        }
    }

    pub fn load(&self) -> Arc<Script> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs a new script for every worker.
    pub fn swap(&self, script: Arc<Script>) {
        if let Some(d) = &self.dynamic {
            script.attach_dynamic_sockets(Arc::clone(d));
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = script;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// A worker's view of the script: refreshed when a reload installed a new one (the worker's
/// `$var`s start afresh with it, since the new script numbers them its own way).
struct Current {
    generation: u64,
    script: Arc<Script>,
}

impl Current {
    fn new(scripts: &Scripts) -> Current {
        Current {
            generation: scripts.generation(),
            script: scripts.load(),
        }
    }

    fn refresh(&mut self, scripts: &Scripts, state: &mut Worker) {
        let g = scripts.generation();
        if g != self.generation {
            *self = Current {
                generation: g,
                script: scripts.load(),
            };
            *state = Worker::default();
        }
    }
}

/// tm sends through the same outlet as everything else.
struct TmHost(Arc<Outlet>);

impl tm::Host for TmHost {
    fn send(&self, out: Outbound, done: Option<tm::SendDone>) {
        self.0.send_then(out, None, done);
    }
}

/// A thread running `work` every `period` (the first time one period from now) until `stop`
/// is raised; it notices `stop` within 50 ms.
fn every(
    period: Duration,
    stop: &Arc<AtomicBool>,
    mut work: impl FnMut() + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let mut next = std::time::Instant::now() + period;
        while !stop.load(Ordering::SeqCst) {
            if std::time::Instant::now() < next {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            next += period;
            work();
        }
    })
}

/// Runs the routes tm arms (failure, onreply) with a worker's state.
struct ScriptRunner<'a> {
    script: &'a Arc<Script>,
    state: &'a mut Worker,
}

impl tm::Runner for ScriptRunner<'_> {
    fn reply_route(&self) -> Option<usize> {
        self.script.reply_route()
    }

    fn run(&mut self, route: usize, ctx: &mut MsgCtx) -> engine::Outcome {
        // The routes a transaction armed belong to the script it started in.
        let script = ctx
            .script
            .clone()
            .unwrap_or_else(|| Arc::clone(self.script));
        match script.run_index(route, self.state, ctx, &mut crate::logging::ScriptLog) {
            Ok(o) => o,
            Err(e) => {
                crate::logging::core(-1, &format!("script: {e}"));
                engine::Outcome::Exit
            }
        }
    }
}

/// The addresses of the listening sockets of one protocol (names resolved, `*` as 0.0.0.0).
pub fn addresses(script: &Script, proto: &str) -> Result<Vec<engine::forward::Socket>, String> {
    let mut out = Vec::new();
    for s in script.listen_sockets().iter().filter(|s| s.proto == proto) {
        let mut s = s.clone();
        if s.addr.is_none() {
            let host = s
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let addr = (host.as_str(), s.port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve socket host `{host}`: {e}"))?
                .next()
                .ok_or_else(|| format!("cannot resolve socket host `{host}`"))?;
            s.addr = Some(addr);
        }
        out.push(s);
    }
    Ok(out)
}

impl Server {
    /// Binds every socket of the script and starts its workers.
    pub fn start(
        scripts: Arc<Scripts>,
        initial: &Worker,
        stop: Arc<AtomicBool>,
    ) -> Result<Server, String> {
        let script = scripts.load();
        // The workers read nothing until every module's sender and hook is set below (a
        // request may be queued on a socket as soon as it is bound).
        let ready = Arc::new(AtomicBool::new(false));
        let (mut udp, mut udp_workers) = (Vec::new(), Vec::new());
        for s in addresses(&script, "udp")? {
            let Some(addr) = s.addr else { continue };
            let socket = bind_udp(addr, s.tos).map_err(|e| format!("udp:{addr}: {e}"))?;
            let local = socket.local_addr().map_err(|e| e.to_string())?;
            crate::logging::core(2, &format!("listening on udp:{local}"));
            udp.push((local, socket));
            // `use_workers N` overrides `udp_workers` for this socket.
            udp_workers.push(s.use_workers.map_or(script.udp_workers(), |n| n as usize));
        }
        let mut listens = Vec::new();
        for proto in ["tcp", "tls", "ws", "wss"] {
            for s in addresses(&script, proto)? {
                let (Some(addr), Some(p)) = (s.addr, Proto::parse(proto)) else {
                    continue;
                };
                listens.push(Listen {
                    proto: p,
                    addr,
                    proxy_protocol: s.allow_proxy_protocol,
                    send_proxy_protocol: s.send_proxy_protocol,
                    reuse_port: s.reuse_port,
                    tos: s.tos,
                });
            }
        }
        let dynamic = scripts.dynamic.clone();
        if udp.is_empty() && listens.is_empty() && dynamic.is_none() {
            return Err("no `socket=` to listen on".into());
        }
        // Connection messages reach the TCP workers in order per connection, on whichever
        // worker is free (transport::inbox).
        let inboxes = transport::inbox::Inboxes::new();
        let mut processes = vec!["main".to_owned()];
        let mut tls_ctx = None;
        // With sockets_mgm the stream transports run even without a configured listener: its
        // table may name one.
        let streams = if listens.is_empty() && dynamic.is_none() {
            None
        } else {
            let tls = crate::transports::tls_context(&script)?.map(Arc::new);
            tls_ctx = tls.clone();
            if listens.iter().any(|l| l.proto.is_secure()) && tls.is_none() {
                return Err(
                    "a tls/wss socket needs `loadmodule \"tls_mgm.so\"` with a server domain"
                        .into(),
                );
            }
            if let Some(tls) = &tls {
                watch_sighup(Arc::clone(tls), Arc::clone(&stop))?;
            }
            let streams = Streams::start(
                crate::transports::settings(&script),
                listens,
                tls,
                inboxes.clone(),
            )
            .map_err(|e| format!("cannot listen: {e}"))?;
            for (proto, addr) in streams.bound() {
                crate::logging::core(2, &format!("listening on {proto}:{addr}"));
            }
            let streams = Arc::new(streams);
            let closer = Arc::clone(&streams);
            engine::hooks::set_tcp_closer(Box::new(move |desc| closer.close_described(desc)));
            let keeper = Arc::clone(&streams);
            engine::hooks::set_tcp_keeper(Box::new(move |conn, d| keeper.keep_open(conn, d)));
            Some(streams)
        };
        let outlet = Arc::new(Outlet {
            udp,
            dynamic_udp: std::sync::RwLock::default(),
            streams: streams.clone(),
        });
        engine::stats::register_core();
        let ports = |p: &[Proto]| -> Vec<u16> {
            streams
                .as_ref()
                .map(|s| {
                    s.bound()
                        .iter()
                        .filter(|(proto, _)| p.contains(proto))
                        .map(|(_, a)| a.port())
                        .collect()
                })
                .unwrap_or_default()
        };
        register_net(
            outlet.udp.iter().map(|(a, _)| a.port()).collect(),
            ports(&[Proto::Tcp, Proto::Ws]),
            ports(&[Proto::Tls, Proto::Wss]),
        );
        // A module's statistics are listed from the start only when the script loads it.
        if script.loads("sl") {
            sl::register_stats();
        }
        if script.loads("tm") {
            tm::register_stats();
        }
        registrar::start(&script);
        // The transaction table, its transport and its timer thread.
        let tm = tm::install(tm::Tm::new(
            tm::params(&script),
            Arc::new(TmHost(Arc::clone(&outlet))),
        ));
        let mut handles = Vec::new();
        {
            let (scripts, stop, mut state) =
                (Arc::clone(&scripts), Arc::clone(&stop), initial.clone());
            handles.push(std::thread::spawn(move || {
                let mut current = Current::new(&scripts);
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                    current.refresh(&scripts, &mut state);
                    let mut runner = ScriptRunner {
                        script: &current.script,
                        state: &mut state,
                    };
                    handle::guarded(
                        || tm.tick(std::time::Instant::now(), &mut runner),
                        || "tm's timers".to_owned(),
                    );
                }
            }));
        }
        for (i, (local, _)) in outlet.udp.iter().enumerate() {
            for _ in 0..udp_workers.get(i).copied().unwrap_or(1).max(1) {
                let (scripts, stop, outlet, ready) = (
                    Arc::clone(&scripts),
                    Arc::clone(&stop),
                    Arc::clone(&outlet),
                    Arc::clone(&ready),
                );
                let (local, state) = (*local, initial.clone());
                let (id, desc) = (processes.len(), format!("UDP receiver udp:{local}"));
                processes.push(desc.clone());
                handles.push(std::thread::spawn(move || {
                    engine::profiling::bind(id, engine::profiling::ProcType::Udp, &desc);
                    wait_ready(&ready, &stop);
                    udp_worker(i, local, &outlet, state, &scripts, &stop)
                }));
            }
        }
        if streams.is_some() {
            let n = script.global_int("tcp_workers").unwrap_or(8).max(1);
            for _ in 0..n {
                let (scripts, stop, outlet, rx, ready) = (
                    Arc::clone(&scripts),
                    Arc::clone(&stop),
                    Arc::clone(&outlet),
                    inboxes.clone(),
                    Arc::clone(&ready),
                );
                let state = initial.clone();
                let id = processes.len();
                processes.push("TCP worker".to_owned());
                handles.push(std::thread::spawn(move || {
                    engine::profiling::bind(id, engine::profiling::ProcType::Tcp, "TCP worker");
                    wait_ready(&ready, &stop);
                    stream_worker(&rx, &outlet, state, &scripts, &stop)
                }));
            }
        }
        // nathelper's keepalive pings to registered contacts, every natping_interval.
        if let Some(pinging) = nathelper::Pinging::of(&script) {
            let outlet = Arc::clone(&outlet);
            let period = pinging.interval;
            processes.push("nathelper pinger".to_owned());
            handles.push(every(period, &stop, move || {
                for ping in pinging.due() {
                    outlet.send(ping, None);
                }
            }));
        }
        // nat_traversal's keepalives to the endpoints nat_keepalive() keeps, every
        // keepalive_interval.
        if let Some(keepalive) = nathelper::traversal::Keepalive::of(&script) {
            let outlet = Arc::clone(&outlet);
            processes.push("nat_traversal keepalive".to_owned());
            handles.push(every(keepalive.interval, &stop, move || {
                for ka in keepalive.due() {
                    outlet.send(ka, None);
                }
            }));
        }
        // Events the modules publish (E_DISPATCHER_STATUS, E_UL_CONTACT_INSERT …) go to their
        // subscribers and run their event_route in a thread of their own, as OpenSIPS runs
        // them asynchronously: the module raising one may hold its own locks. What the route
        // sends goes out at once.
        {
            type Raised = (String, Vec<(Option<String>, engine::Value)>);
            let (tx, rx) = std::sync::mpsc::channel::<Raised>();
            let (routes, outlet) = (Arc::clone(&scripts), Arc::clone(&outlet));
            processes.push("event dispatcher".to_owned());
            std::thread::Builder::new()
                .name("events".into())
                .spawn(move || {
                    let mut worker = engine::Worker::default();
                    while let Ok((name, params)) = rx.recv() {
                        let script = routes.load();
                        let mut log = crate::logging::ScriptLog;
                        match script.raise_core_event(&name, &mut worker, &mut log, params) {
                            Some(Ok(outs)) => {
                                for out in outs {
                                    outlet.send(out, None);
                                }
                            }
                            Some(Err(e)) => {
                                crate::logging::core(-1, &format!("event_route[{name}]: {e}"));
                            }
                            None => {}
                        }
                    }
                })
                .map_err(|e| format!("cannot start the event dispatcher: {e}"))?;
            let tx = std::sync::Mutex::new(tx);
            engine::hooks::set_event_raiser(Box::new(move |name, params| {
                let tx = tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = tx.send((name.to_owned(), params));
            }));
            let scripts = Arc::clone(&scripts);
            engine::hooks::set_event_wanted(Box::new(move |name| {
                engine::evi::has_subscribers(name)
                    || scripts
                        .load()
                        .route_index(cfg::ast::RouteKind::Event, name)
                        .is_some()
            }));
        }
        // event_routing: a notification route runs in a thread of its own (OpenSIPS runs it
        // outside the subscriber's processing too), over the subscriber's request and
        // transaction; what it sends goes out at once.
        {
            let (tx, rx) = std::sync::mpsc::channel::<engine::ebr::Notification>();
            let (routes, outlet) = (Arc::clone(&scripts), Arc::clone(&outlet));
            processes.push("event_routing notifications".to_owned());
            std::thread::Builder::new()
                .name("ebr".into())
                .spawn(move || {
                    let mut worker = engine::Worker::default();
                    while let Ok(n) = rx.recv() {
                        let script = n.script.clone().unwrap_or_else(|| routes.load());
                        let mut ctx = n.context(&script);
                        let mut log = crate::logging::ScriptLog;
                        if let Err(e) = script.run_index(n.route, &mut worker, &mut ctx, &mut log) {
                            crate::logging::core(
                                -1,
                                &format!("event_routing: notification of {}: {e}", n.event),
                            );
                        }
                        for out in std::mem::take(&mut ctx.outbox) {
                            outlet.send(out, None);
                        }
                    }
                })
                .map_err(|e| format!("cannot start the event_routing runner: {e}"))?;
            let tx = std::sync::Mutex::new(tx);
            engine::ebr::set_runner(Box::new(move |n| {
                let tx = tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = tx.send(n);
            }));
        }
        // dialog: timeouts and deleted dialogs once a second, and the database writes.
        if script.loads("dialog") {
            dialog::end::set_sender(Box::new(DialogSender(Arc::clone(&scripts))));
            // dlg_on_answer / dlg_on_timeout / dlg_on_hangup: the route runs over the dialog
            // with no SIP message of its own; what it sends goes out at once.
            let (scripts, outlet) = (Arc::clone(&scripts), Arc::clone(&outlet));
            dialog::table::set_route_runner(Box::new(move |route, id| {
                run_dialog_route(&scripts, &outlet, route, id);
            }));
            processes.push("dialog timer".to_owned());
            handles.push(every(Duration::from_secs(1), &stop, || {
                dialog::end::tick(std::time::Instant::now());
            }));
            // Database writes in a thread of their own: a slow database does not hold up
            // timeouts and pings.
            processes.push("dialog db writer".to_owned());
            handles.push(every(Duration::from_secs(1), &stop, || {
                dialog::persist::flush(false);
            }));
        }
        // presence: NOTIFYs can go out; expiries and the database update on its timer.
        if script.loads("presence") {
            presence::serve(Box::new(PresenceSender(Arc::clone(&scripts))));
            processes.push("presence timer".to_owned());
            handles.push(every(Duration::from_secs(1), &stop, presence::tick));
        }
        // pua: PUBLISHes can go out; refreshes and the table writes on its timer.
        if script.loads("pua") {
            pua::serve(Box::new(PuaSender(Arc::clone(&scripts))));
            processes.push("pua timer".to_owned());
            handles.push(every(Duration::from_secs(1), &stop, pua::tick));
        }
        // uac_registrant: the registrations start now, each checked every second.
        if script.loads("uac_registrant") {
            uac_registrant::serve(Box::new(RegistrantSender(Arc::clone(&scripts))));
            processes.push("uac_registrant timer".to_owned());
            handles.push(every(Duration::from_secs(1), &stop, uac_registrant::tick));
        }
        // load_balancer's probes, every probing_interval.
        if let Some(period) = load_balancer::probe::interval(&script) {
            let scripts = Arc::clone(&scripts);
            processes.push("load_balancer probing".to_owned());
            handles.push(every(period, &stop, move || {
                load_balancer::probe::round(&scripts.load());
            }));
        }
        // msilo: expired stored messages go every check_time × clean_period.
        if let Some(period) = msilo::clean_interval() {
            processes.push("msilo cleaner".to_owned());
            handles.push(every(period, &stop, msilo::clean));
        }
        // pike: a sampling window ends every sampling_time_unit; idle nodes go every second.
        if let Some(window) = pike::window() {
            processes.push("pike timers".to_owned());
            handles.push(every(window, &stop, pike::swap));
            handles.push(every(Duration::from_secs(1), &stop, pike::clean));
        }
        // ratelimit's timer: every timer_interval each pipe starts a new interval.
        if let Some(period) = ratelimit::interval() {
            processes.push("ratelimit timer".to_owned());
            handles.push(every(period, &stop, ratelimit::tick));
        }
        // dispatcher's probes, every ds_ping_interval (the running script's settings).
        if let Some(period) = dispatcher::probe::interval(&script) {
            let scripts = Arc::clone(&scripts);
            processes.push("dispatcher probing".to_owned());
            handles.push(every(period, &stop, move || {
                dispatcher::probe::round(&scripts.load());
            }));
        }
        // One thread per timer_route, each with its own `$var`s, like OpenSIPS' timer processes.
        let timers: Vec<(String, u64)> = script.timers().map(|(n, s)| (n.to_owned(), s)).collect();
        // They are the `timer` entry of `core:ps`, pushed below.
        let timer_id = processes.len();
        for (n, (name, secs)) in timers.into_iter().enumerate() {
            let (scripts, stop, mut state) =
                (Arc::clone(&scripts), Arc::clone(&stop), initial.clone());
            handles.push(std::thread::spawn(move || {
                engine::profiling::bind(timer_id, engine::profiling::ProcType::Timer, "timer");
                let mut current = Current::new(&scripts);
                let period = Duration::from_secs(secs);
                let mut next = std::time::Instant::now() + period;
                while !stop.load(Ordering::SeqCst) {
                    if std::time::Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    next += period;
                    current.refresh(&scripts, &mut state);
                    let profiled = engine::profiling::active() & engine::profiling::PROC != 0;
                    if profiled {
                        engine::profiling::timer_job_begin(&name);
                    }
                    let r = current
                        .script
                        .run_timer(n, &mut state, &mut crate::logging::ScriptLog);
                    if profiled {
                        engine::profiling::timer_job_end(&name, if r.is_err() { -1 } else { 0 });
                    }
                    if let Err(e) = r {
                        crate::logging::core(-1, &format!("timer_route[{name}]: {e}"));
                    }
                }
            }));
        }
        processes.push("timer".to_owned());
        if streams.is_some() {
            processes.push("TCP main".to_owned());
        }
        // sockets_mgm: the pool for its UDP sockets, then the table's sockets opened.
        if let Some(dynamic) = dynamic {
            let pool = dynamic::start_pool(
                sockets_mgm::processes(&script),
                &scripts,
                initial,
                &outlet,
                &stop,
                &mut handles,
                &mut processes,
            );
            let opener = dynamic::Opener::new(
                Arc::clone(&outlet),
                streams.clone(),
                pool,
                Arc::clone(&stop),
                &script,
            );
            sockets_mgm::serve(Box::new(opener), dynamic);
        }
        ready.store(true, Ordering::Release);
        Ok(Server {
            workers: handles,
            streams,
            tls: tls_ctx,
            processes,
        })
    }

    /// Waits for every worker to finish (after the stop flag is raised), then closes every
    /// connection.
    pub fn join(self) {
        for h in self.workers {
            let _ = h.join();
        }
        if let Some(streams) = self.streams
            && let Ok(streams) = Arc::try_unwrap(streams)
        {
            streams.shutdown();
        }
    }
}

/// Bytes waiting in the receive queues of the kernel sockets bound to `ports` (from
/// /proc/net/{udp,udp6} or {tcp,tcp6}: accepted connections share their listener's port).
fn waiting(kind: &str, ports: &[u16]) -> i64 {
    let mut total = 0i64;
    for file in [format!("/proc/net/{kind}"), format!("/proc/net/{kind}6")] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut cols = line.split_whitespace();
            let (Some(local), Some(queues)) = (cols.nth(1), cols.nth(2)) else {
                continue;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let rx = queues
                .split_once(':')
                .and_then(|(_, rx)| i64::from_str_radix(rx, 16).ok());
            if let (Some(port), Some(rx)) = (port, rx)
                && ports.contains(&port)
            {
                total += rx;
            }
        }
    }
    total
}

/// The `net` statistics group: bytes waiting to be read, per transport.
fn register_net(udp: Vec<u16>, tcp: Vec<u16>, tls: Vec<u16>) {
    engine::stats::computed("net", "waiting_udp", Box::new(move || waiting("udp", &udp)));
    engine::stats::computed("net", "waiting_tcp", Box::new(move || waiting("tcp", &tcp)));
    engine::stats::computed("net", "waiting_tls", Box::new(move || waiting("tcp", &tls)));
}

/// A UDP socket with the `tos` option applied (traffic class on IPv6) and a read timeout, so
/// workers notice the stop flag.
fn bind_udp(addr: SocketAddr, tos: Option<u32>) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Bursts (a reply per branch of a large fork, a registration storm) must not overflow the
    // default ~200 KiB buffer; the kernel caps this at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    if let Some(tos) = tos {
        match addr {
            SocketAddr::V4(_) => socket.set_tos_v4(tos)?,
            SocketAddr::V6(_) => socket.set_tclass_v6(tos)?,
        }
    }
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(socket)
}

/// SIGHUP re-reads every TLS certificate, key and CA list from their files; on any error the
/// certificates in use stay (OpenSIPS can only reload certificates kept in a database).
fn watch_sighup(tls: Arc<transport::tls::TlsContext>, stop: Arc<AtomicBool>) -> Result<(), String> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if hup.swap(false, Ordering::SeqCst) {
                match tls.reload() {
                    Ok(()) => crate::logging::write(2, "tls_mgm", "certificates reloaded"),
                    Err(e) => crate::logging::write(
                        -1,
                        "tls_mgm",
                        &format!("reload failed, keeping the current certificates: {e}"),
                    ),
                }
            }
        }
    });
    Ok(())
}

fn udp_worker(
    index: usize,
    local: SocketAddr,
    outlet: &Outlet,
    mut state: Worker,
    scripts: &Scripts,
    stop: &AtomicBool,
) {
    let Some(socket) = outlet.udp.get(index).and_then(|(_, s)| s.try_clone().ok()) else {
        return;
    };
    let mut current = Current::new(scripts);
    // `allow_proxy_protocol` on a UDP socket: a datagram may start with a PROXY header
    // (OpenSIPS `check_udp_proxy_protocol`), which names the client and is taken off.
    let proxy_allowed = current
        .script
        .listen_sockets()
        .iter()
        .any(|s| s.proto == "udp" && s.addr == Some(local) && s.allow_proxy_protocol);
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::SeqCst) {
        let (n, source) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                crate::logging::core(-1, &format!("udp receive on {local}: {e}"));
                continue;
            }
        };
        let Some(mut data) = buf.get(..n) else {
            continue;
        };
        let mut proxy = None;
        if proxy_allowed
            && (data.starts_with(b"PROXY ") || data.starts_with(b"\r\n\r\n\0\r\nQUIT\n"))
        {
            match transport::proxy_protocol::parse(data) {
                Ok(Some((header, used))) => {
                    proxy = header.source.zip(header.destination);
                    data = &data[used..];
                }
                Ok(None) | Err(_) => {
                    crate::logging::core(
                        -1,
                        &format!("udp from {source}: bad PROXY protocol header, dropped"),
                    );
                    continue;
                }
            }
        }
        let receipt = Receipt {
            source,
            proto: "udp",
            local,
            conn: None,
            proxy,
        };
        current.refresh(scripts, &mut state);
        // E_PROFILING_PROC: one relaxed load per message while profiling is off.
        let profiled = engine::profiling::active() & engine::profiling::PROC != 0;
        if profiled {
            engine::profiling::msg_begin("udp", false);
        }
        for out in timed_handle(data, receipt, &current.script, &mut state, None) {
            outlet.send(out, Some(&socket));
        }
        if profiled {
            engine::profiling::msg_end(false, 0);
        }
    }
}

fn stream_worker(
    rx: &transport::inbox::Inboxes,
    outlet: &Outlet,
    mut state: Worker,
    scripts: &Scripts,
    stop: &AtomicBool,
) {
    let mut current = Current::new(scripts);
    // tcp_accept_aliases: 0 never, 1 when the Via asks (`;alias`, RFC 5923), 2 always.
    let aliases = current.script.global_int("tcp_accept_aliases").unwrap_or(0);
    loop {
        // On stop, what is already queued is still handled (a drain), then the worker ends.
        let turn = if stop.load(Ordering::SeqCst) {
            match rx.try_next() {
                Some(t) => t,
                None => return,
            }
        } else {
            match rx.next(Duration::from_millis(100)) {
                Some(t) => t,
                None => continue,
            }
        };
        handle_stream_message(
            &turn.msg,
            outlet,
            &mut state,
            scripts,
            &mut current,
            aliases,
        );
        // The connection's next message may go to any worker now.
        rx.done(turn);
    }
}

/// One message (or the close) of a connection, handled by a TCP worker.
fn handle_stream_message(
    msg: &Inbound,
    outlet: &Outlet,
    state: &mut Worker,
    scripts: &Scripts,
    current: &mut Current,
    aliases: i64,
) {
    current.refresh(scripts, state);
    if msg.closed {
        // OpenSIPS' E_CORE_TCP_DISCONNECT: the peer is the source, our socket the
        // destination.
        use engine::Value;
        let params = vec![
            (
                Some("src_ip".to_owned()),
                Value::from(engine::pv::ip_text(msg.source.ip())),
            ),
            (
                Some("src_port".to_owned()),
                Value::Int(i64::from(msg.source.port())),
            ),
            (
                Some("dst_ip".to_owned()),
                Value::from(engine::pv::ip_text(msg.local.ip())),
            ),
            (
                Some("dst_port".to_owned()),
                Value::Int(i64::from(msg.local.port())),
            ),
            (
                Some("proto".to_owned()),
                Value::from(msg.proto.as_str().to_owned()),
            ),
        ];
        let mut log = crate::logging::ScriptLog;
        match current
            .script
            .raise_core_event("E_CORE_TCP_DISCONNECT", state, &mut log, params)
        {
            Some(Ok(outs)) => {
                for out in outs {
                    outlet.send(out, None);
                }
            }
            Some(Err(e)) => {
                crate::logging::core(-1, &format!("event_route[E_CORE_TCP_DISCONNECT]: {e}"));
            }
            None => {}
        }
        return;
    }
    let receipt = Receipt {
        source: msg.source,
        proto: msg.proto.as_str(),
        local: msg.local,
        conn: Some(msg.conn),
        proxy: msg.proxy,
    };
    // A tcp_mgm profile's alias_mode takes the place of tcp_accept_aliases.
    let aliases = msg.alias_mode.map_or(aliases, i64::from);
    let streams = outlet.streams.as_deref().map(|s| (s, aliases));
    let profiled = engine::profiling::active() & engine::profiling::PROC != 0;
    if profiled {
        engine::profiling::msg_begin(msg.proto.as_str(), true);
    }
    for out in timed_handle(&msg.data, receipt, &current.script, state, streams) {
        outlet.send(out, None);
    }
    if profiled {
        engine::profiling::msg_end(true, 0);
    }
}

mod handle;
#[cfg(test)]
use handle::handle;
use handle::timed_handle;
#[cfg(test)]
use sip::SipMessage;

mod dynamic;
mod local;
use local::{DialogSender, PresenceSender, PuaSender, RegistrantSender, run_dialog_route};
#[cfg(test)]
mod mutations;
#[cfg(test)]
mod tests;
