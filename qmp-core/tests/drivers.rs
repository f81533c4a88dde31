//! The blocking and the async drivers over an in-memory wire with a fake
//! clock: negotiation, pipelining, OOB overtaking a slow command, events
//! while the peer is silent, throttled events flushed with no input, peer
//! EOF mid-message, a write error, `Interrupted`/`TimedOut`, the client
//! drivers, and the same bytes from both drivers for a recorded transcript
//! under random chunkings. The async drivers allocate nothing.

#[path = "common/counting.rs"]
mod counting;

use core::future::{poll_fn, Future};
use core::ops::ControlFlow;
use core::task::Poll;
use std::cell::{Cell, RefCell};

use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, EventOut, Reply, ReplyToken, Throttle,
};
use qmp_core::client::commands::QueryStatus;
use qmp_core::client::{Client, ClientEvent, ExecuteOptions};
use qmp_core::drive::{asynch, blocking, DriveError, ServeOptions, Served};
use qmp_core::pump::Pump;
#[cfg(feature = "qga")]
use qmp_core::qga::QgaClient;
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;
use rand::{rngs::SmallRng, Rng, SeedableRng};

#[global_allocator]
static A: counting::Counting = counting::Counting;

// ---------------------------------------------------------------------------
// The world: a fake clock, a scripted peer, a recorded output

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Interrupted,
    TimedOut,
    Broken,
}

#[derive(Debug)]
struct WireError(Fault);

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl core::error::Error for WireError {}

impl embedded_io::Error for WireError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self.0 {
            Fault::Interrupted => embedded_io::ErrorKind::Interrupted,
            Fault::TimedOut => embedded_io::ErrorKind::TimedOut,
            Fault::Broken => embedded_io::ErrorKind::BrokenPipe,
        }
    }
}

/// Everything the peer and the clock do.
struct World {
    /// Milliseconds; every reading advances it by `step`.
    now: Cell<u64>,
    step: u64,
    /// Readings past this panic: a driver that never returns.
    limit: u64,
    /// Input: bytes available from a time on.
    input: RefCell<Vec<(u64, Vec<u8>)>>,
    at: Cell<usize>,
    /// End of stream once all input is read and the clock is past this.
    eof_at: Option<u64>,
    read_max: usize,
    write_max: usize,
    /// Faults: every `read_fault_every`-th read, every `write_fault_every`-th
    /// write fails with `fault` (0: never).
    read_fault_every: usize,
    write_fault_every: usize,
    fault: Fault,
    reads: Cell<usize>,
    writes: Cell<usize>,
    /// Writes fail for good after this many bytes.
    break_after: Option<usize>,
    /// What the driver wrote, and when each write happened.
    output: RefCell<Vec<u8>>,
    writes_at: RefCell<Vec<(u64, usize)>>,
}

impl World {
    fn new(input: &[(u64, &[u8])], eof_at: Option<u64>) -> World {
        World {
            now: Cell::new(0),
            step: 1,
            limit: 1_000_000,
            input: RefCell::new(input.iter().map(|(t, b)| (*t, b.to_vec())).collect()),
            at: Cell::new(0),
            eof_at,
            read_max: usize::MAX,
            write_max: usize::MAX,
            read_fault_every: 0,
            write_fault_every: 0,
            fault: Fault::Interrupted,
            reads: Cell::new(0),
            writes: Cell::new(0),
            break_after: None,
            // Reserved up front: pushing into it never allocates while a
            // driver runs (the allocation counts stay the driver's own).
            output: RefCell::new(Vec::with_capacity(1 << 20)),
            writes_at: RefCell::new(Vec::with_capacity(1 << 16)),
        }
    }

    fn clock(&self) -> Instant {
        let t = self.now.get();
        assert!(t < self.limit, "the driver did not return by t={t}");
        self.now.set(t + self.step);
        Instant::from_millis(t)
    }

    fn peek_now(&self) -> u64 {
        self.now.get()
    }

    /// Whether a read now would not block: bytes available, or the end.
    fn ready(&self) -> bool {
        let now = self.peek_now();
        let input = self.input.borrow();
        match input.first() {
            Some((t, _)) => *t <= now,
            None => self.eof_at.is_some_and(|e| e <= now),
        }
    }

    fn fault(&self, counter: &Cell<usize>, every: usize) -> Option<WireError> {
        counter.set(counter.get() + 1);
        (every > 0 && counter.get().is_multiple_of(every)).then_some(WireError(self.fault))
    }

    fn read(&self, buf: &mut [u8]) -> Result<Option<usize>, WireError> {
        if let Some(e) = self.fault(&self.reads, self.read_fault_every) {
            return Err(e);
        }
        if !self.ready() {
            return Ok(None);
        }
        let mut input = self.input.borrow_mut();
        let Some((_, bytes)) = input.first_mut() else {
            return Ok(Some(0));
        };
        let n = buf
            .len()
            .min(self.read_max)
            .min(bytes.len() - self.at.get());
        let at = self.at.get();
        buf[..n].copy_from_slice(&bytes[at..at + n]);
        self.at.set(at + n);
        if self.at.get() == bytes.len() {
            input.remove(0);
            self.at.set(0);
        }
        Ok(Some(n))
    }

    fn write(&self, buf: &[u8]) -> Result<usize, WireError> {
        if let Some(e) = self.fault(&self.writes, self.write_fault_every) {
            return Err(e);
        }
        let mut out = self.output.borrow_mut();
        if self.break_after.is_some_and(|b| out.len() >= b) {
            return Err(WireError(Fault::Broken));
        }
        let n = buf.len().min(self.write_max);
        out.extend_from_slice(&buf[..n]);
        self.writes_at
            .borrow_mut()
            .push((self.peek_now(), out.len()));
        Ok(n)
    }

    fn text(&self) -> String {
        String::from_utf8(self.output.borrow().clone()).unwrap()
    }

    /// When the byte at `offset` of the output was written.
    fn written_at(&self, offset: usize) -> u64 {
        self.writes_at
            .borrow()
            .iter()
            .find(|(_, end)| *end > offset)
            .map(|(t, _)| *t)
            .unwrap()
    }
}

/// The world as a blocking transport.
struct Wire<'w>(&'w World);

impl embedded_io::ErrorType for Wire<'_> {
    type Error = WireError;
}

impl embedded_io::Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, WireError> {
        loop {
            // A blocking read: wait (the clock runs) until ready.
            if let Some(n) = self.0.read(buf)? {
                return Ok(n);
            }
            self.0.clock();
        }
    }
}

impl embedded_io::ReadReady for Wire<'_> {
    fn read_ready(&mut self) -> Result<bool, WireError> {
        Ok(self.0.ready())
    }
}

impl embedded_io::Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, WireError> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), WireError> {
        Ok(())
    }
}

/// The world as an async reader and writer.
struct AsyncWire<'w>(&'w World);

impl embedded_io_async::ErrorType for AsyncWire<'_> {
    type Error = WireError;
}

impl embedded_io_async::Read for AsyncWire<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, WireError> {
        poll_fn(|_| match self.0.read(buf) {
            Ok(Some(n)) => Poll::Ready(Ok(n)),
            Ok(None) => {
                self.0.clock();
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        })
        .await
    }
}

impl embedded_io_async::Write for AsyncWire<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, WireError> {
        self.0.write(buf)
    }
    async fn flush(&mut self) -> Result<(), WireError> {
        Ok(())
    }
}

impl asynch::Clock for World {
    fn now(&self) -> Instant {
        self.clock()
    }
    fn at(&self, at: Instant) -> impl Future<Output = ()> {
        poll_fn(move |_| {
            if self.clock() >= at {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

// ---------------------------------------------------------------------------
// The monitor both drivers serve

const COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("query-status"),
    CommandSpec::new("slow"),
    CommandSpec::new("fast").oob(),
    CommandSpec::new("tick"),
];
const THROTTLE: &[Throttle<'static>] = &[Throttle::new("RTC_CHANGE", 1000)];
const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";
const NEGOTIATE: &[u8] = br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#;
const OK: &str = "{\"return\": {}}\r\n";

/// The application: answers at once, except `slow`, which it answers at
/// its first wake-up at or after `slow_until`; emits `BUTTON` at its first
/// wake-up after the world's `button_at`, and RTC_CHANGE events on `tick`
/// requests.
struct Monitor<'w> {
    world: &'w World,
    slow: Option<ReplyToken>,
    slow_until: u64,
    button_at: Option<u64>,
    /// When the application emitted BUTTON.
    pressed: Option<u64>,
    rtc: u32,
}

impl<'w> Monitor<'w> {
    fn new(world: &'w World) -> Self {
        Monitor {
            world,
            slow: None,
            slow_until: 0,
            button_at: None,
            pressed: None,
            rtc: 0,
        }
    }

    fn serve(&mut self, agent: &mut Agent<'_, '_>, now: Instant) -> ControlFlow<()> {
        let t = now.as_millis();
        if self.button_at.is_some_and(|b| b <= t) && self.pressed.is_none() {
            self.pressed = Some(t);
            assert_eq!(
                agent.emit(now, &EventOut::new("BUTTON").timestamp(-1, -1)),
                Ok(qmp_core::agent::Emitted::Sent)
            );
        }
        let empty = validate(b"{}", FramerConfig::new()).unwrap();
        if self.slow.is_some() && t >= self.slow_until {
            let token = self.slow.take().unwrap();
            agent.complete(token, Reply::Return(&empty)).unwrap();
        }
        let status = validate(
            br#"{"status": "running", "running": true}"#,
            FramerConfig::new(),
        )
        .unwrap();
        while let Some(req) = agent.poll_request() {
            let token = req.token;
            let (slow, tick, query) = (
                req.name.eq_str("slow"),
                req.name.eq_str("tick"),
                req.name.eq_str("query-status"),
            );
            if slow {
                self.slow = Some(token);
                continue;
            }
            if tick {
                self.rtc += 1;
                let text = format!("{{\"offset\": {}}}", self.rtc);
                let data = validate(text.as_bytes(), FramerConfig::new()).unwrap();
                let _ = agent.emit(
                    now,
                    &EventOut::new("RTC_CHANGE").data(&data).timestamp(-1, -1),
                );
            }
            let v = if query { &status } else { &empty };
            agent.complete(token, Reply::Return(v)).unwrap();
        }
        let _ = self.world;
        ControlFlow::Continue(())
    }
}

/// The application with its signal for the async driver: `wake` completes
/// once the button is pressed (another task sets `signal`).
struct AsyncMonitor<'w, 's> {
    m: Monitor<'w>,
    signal: &'s Cell<bool>,
}

impl asynch::App for AsyncMonitor<'_, '_> {
    fn serve(&mut self, agent: &mut Agent<'_, '_>, now: Instant) -> ControlFlow<()> {
        if self.signal.get() {
            self.m.button_at = Some(0);
            self.signal.set(false);
        }
        self.m.serve(agent, now)
    }
    fn wake(&mut self) -> impl Future<Output = ()> {
        let signal = self.signal;
        let slow = self.m.slow.is_some().then_some(self.m.slow_until);
        let world = self.m.world;
        poll_fn(move |_| {
            if signal.get() || slow.is_some_and(|s| world.peek_now() >= s) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

struct Bufs {
    f: Vec<u8>,
    q: Vec<u8>,
    o: Vec<u8>,
    t: Vec<u8>,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Bufs {
    fn new(rx: usize, tx: usize) -> Bufs {
        Bufs {
            f: vec![0; 1024],
            q: vec![0; 8192],
            o: vec![0; 4096],
            t: vec![0; 1024],
            rx: vec![0; rx],
            tx: vec![0; tx],
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Blocking,
    Async,
}

/// Serves the world with the given driver; returns how it ended and the
/// monitor.
fn run<'w>(
    kind: Kind,
    world: &'w World,
    bufs: &mut Bufs,
    options: ServeOptions,
    setup: impl FnOnce(&mut Monitor<'w>),
    button_task_at: Option<u64>,
) -> (Result<Served, DriveError<WireError>>, Monitor<'w>) {
    let cfg = AgentConfig::new((10, 0, 0), "", COMMANDS).with_throttle(THROTTLE);
    let mut agent = Agent::new(
        cfg,
        AgentBuffers::new(&mut bufs.f, &mut bufs.q, &mut bufs.o).with_throttle(&mut bufs.t),
    )
    .unwrap();
    let mut pump = Pump::new(&mut bufs.rx, &mut bufs.tx);
    let mut monitor = Monitor::new(world);
    setup(&mut monitor);
    match kind {
        Kind::Blocking => {
            let mut wire = Wire(world);
            let r = blocking::serve(
                &mut agent,
                &mut wire,
                &mut pump,
                options,
                || world.clock(),
                |a, now| monitor.serve(a, now),
            );
            (r, monitor)
        }
        Kind::Async => {
            let signal = Cell::new(false);
            let mut app = AsyncMonitor {
                m: monitor,
                signal: &signal,
            };
            let (mut r, mut w) = (AsyncWire(world), AsyncWire(world));
            let serve = asynch::serve(
                &mut agent, &mut r, &mut w, &mut pump, options, world, &mut app,
            );
            // Another task: presses the button at its time.
            let other = async {
                if let Some(at) = button_task_at {
                    poll_fn(|_| {
                        if world.peek_now() >= at {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await;
                    signal.set(true);
                }
            };
            let (r, ()) = embassy_futures::block_on(embassy_futures::join::join(serve, other));
            (r, app.m)
        }
    }
}

const KINDS: [Kind; 2] = [Kind::Blocking, Kind::Async];

// ---------------------------------------------------------------------------
// Agent drivers

#[test]
fn negotiation_and_pipelined_requests() {
    let mut input = NEGOTIATE.to_vec();
    for i in 0..50 {
        input.extend_from_slice(format!(r#"{{"execute":"query-status","id":{i}}}"#).as_bytes());
    }
    let mut expected = format!("{GREETING}{OK}");
    for i in 0..50 {
        expected += &format!(
            "{{\"return\": {{\"status\": \"running\", \"running\": true}}, \"id\": {i}}}\r\n"
        );
    }
    for kind in KINDS {
        let world = World::new(&[(0, &input)], Some(0));
        let mut bufs = Bufs::new(64, 64);
        let (r, _) = run(kind, &world, &mut bufs, ServeOptions::new(), |_| {}, None);
        assert_eq!(r.unwrap(), Served::Eof, "{kind:?}");
        assert_eq!(world.text(), expected, "{kind:?}");
    }
}

#[test]
fn oob_overtakes_a_slow_in_band_command() {
    let input = [
        NEGOTIATE,
        br#"{"execute":"slow","id":"s"}{"exec-oob":"fast","id":"f"}"#,
    ]
    .concat();
    for kind in KINDS {
        let world = World::new(&[(0, &input)], Some(300));
        let mut bufs = Bufs::new(64, 64);
        let (r, _) = run(
            kind,
            &world,
            &mut bufs,
            ServeOptions::new().with_tick_ms(10),
            |m| m.slow_until = 200,
            None,
        );
        assert_eq!(r.unwrap(), Served::Eof);
        assert_eq!(
            world.text(),
            format!("{GREETING}{OK}{{\"return\": {{}}, \"id\": \"f\"}}\r\n{{\"return\": {{}}, \"id\": \"s\"}}\r\n"),
            "{kind:?}"
        );
        // The slow reply went out when the application answered it.
        let slow_at = world.written_at(world.text().len() - 1);
        assert!(
            (200..220).contains(&slow_at),
            "{kind:?}: slow reply at {slow_at}"
        );
    }
}

#[test]
fn an_event_goes_out_while_the_peer_is_silent_within_one_tick() {
    for kind in KINDS {
        let world = World::new(&[(0, NEGOTIATE)], Some(2000));
        let mut bufs = Bufs::new(64, 64);
        let tick = 100;
        // Blocking: the application sees the button at a tick; async:
        // another task signals it at 500.
        let (r, m) = run(
            kind,
            &world,
            &mut bufs,
            ServeOptions::new().with_tick_ms(tick),
            |m| m.button_at = (kind == Kind::Blocking).then_some(500),
            (kind == Kind::Async).then_some(500),
        );
        assert_eq!(r.unwrap(), Served::Eof);
        let text = world.text();
        let ev =
            "{\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}, \"event\": \"BUTTON\"}\r\n";
        assert_eq!(text, format!("{GREETING}{OK}{ev}"), "{kind:?}");
        let sent_at = world.written_at(text.len() - 1);
        let pressed = m.pressed.unwrap();
        assert!(
            (500..500 + tick).contains(&sent_at),
            "{kind:?}: BUTTON out at {sent_at} (pressed at {pressed})"
        );
    }
}

#[test]
fn a_throttled_event_is_flushed_when_its_window_ends_with_no_input() {
    let input = [NEGOTIATE, br#"{"execute":"tick","id":1}"#].concat();
    for kind in KINDS {
        let world = World::new(
            &[(0, &input), (10, br#"{"execute":"tick","id":2}"#)],
            Some(3000),
        );
        let mut bufs = Bufs::new(64, 64);
        let (r, _) = run(kind, &world, &mut bufs, ServeOptions::new(), |_| {}, None);
        assert_eq!(r.unwrap(), Served::Eof);
        let text = world.text();
        let rtc = |n: u32| {
            format!("{{\"timestamp\": {{\"seconds\": -1, \"microseconds\": -1}}, \"event\": \"RTC_CHANGE\", \"data\": {{\"offset\": {n}}}}}\r\n")
        };
        assert_eq!(
            text,
            format!("{GREETING}{OK}{}{{\"return\": {{}}, \"id\": 1}}\r\n{{\"return\": {{}}, \"id\": 2}}\r\n{}", rtc(1), rtc(2)),
            "{kind:?}"
        );
        let at = world.written_at(text.len() - 1);
        assert!(
            (1000..1010).contains(&at),
            "{kind:?}: throttled event out at {at}"
        );
    }
}

#[test]
fn peer_eof_mid_message_answers_every_complete_request_once() {
    let input = [
        NEGOTIATE,
        br#"{"execute":"query-status","id":1}{"execute":"slow","id":2}{"execute":"query-st"#,
    ]
    .concat();
    for kind in KINDS {
        let world = World::new(&[(0, &input)], Some(0));
        let mut bufs = Bufs::new(16, 64);
        let (r, _) = run(
            kind,
            &world,
            &mut bufs,
            ServeOptions::new().with_tick_ms(5),
            |m| m.slow_until = 50,
            None,
        );
        assert_eq!(r.unwrap(), Served::Eof);
        assert_eq!(
            world.text(),
            format!("{GREETING}{OK}{{\"return\": {{\"status\": \"running\", \"running\": true}}, \"id\": 1}}\r\n{{\"return\": {{}}, \"id\": 2}}\r\n"),
            "{kind:?}"
        );
    }
}

#[test]
fn a_write_error_ends_serve_with_the_session_intact() {
    for kind in KINDS {
        let world = World {
            break_after: Some(GREETING.len()),
            ..World::new(
                &[(0, NEGOTIATE), (100, br#"{"execute":"query-status"}"#)],
                None,
            )
        };
        let mut bufs = Bufs::new(64, 64);
        let (r, _) = run(kind, &world, &mut bufs, ServeOptions::new(), |_| {}, None);
        match r {
            Err(DriveError::Io(WireError(Fault::Broken))) => {}
            other => panic!("{kind:?}: {other:?}"),
        }
        assert_eq!(world.text(), GREETING, "{kind:?}");
    }
}

#[test]
fn interrupted_and_timed_out_reads_and_writes_change_nothing() {
    let mut input = NEGOTIATE.to_vec();
    for i in 0..20 {
        input.extend_from_slice(format!(r#"{{"execute":"query-status","id":{i}}}"#).as_bytes());
    }
    let clean = {
        let world = World::new(&[(0, &input)], Some(0));
        let mut bufs = Bufs::new(16, 32);
        run(
            Kind::Blocking,
            &world,
            &mut bufs,
            ServeOptions::new(),
            |_| {},
            None,
        )
        .0
        .unwrap();
        world.text()
    };
    for kind in KINDS {
        for fault in [Fault::Interrupted, Fault::TimedOut] {
            let world = World {
                read_fault_every: 3,
                write_fault_every: 2,
                fault,
                read_max: 7,
                write_max: 5,
                ..World::new(&[(0, &input)], Some(0))
            };
            let mut bufs = Bufs::new(16, 32);
            let (r, _) = run(kind, &world, &mut bufs, ServeOptions::new(), |_| {}, None);
            assert_eq!(r.unwrap(), Served::Eof, "{kind:?} {fault:?}");
            assert_eq!(world.text(), clean, "{kind:?} {fault:?}");
        }
    }
}

/// A recorded transcript through both drivers, in random read and write
/// chunkings: the same bytes.
#[test]
fn both_drivers_write_the_same_bytes_for_a_transcript() {
    let c2s = include_bytes!("data/qemu-system-7.2.c2s");
    let mut seen: Option<String> = None;
    let mut rng = SmallRng::seed_from_u64(13);
    for round in 0..12 {
        let kind = KINDS[round % 2];
        // Random pieces arriving over time.
        let mut pieces = Vec::new();
        let mut at = 0;
        let mut t = 0;
        while at < c2s.len() {
            let n = rng.random_range(1..200).min(c2s.len() - at);
            pieces.push((t, c2s[at..at + n].to_vec()));
            at += n;
            t += rng.random_range(0..3);
        }
        let script: Vec<(u64, &[u8])> = pieces.iter().map(|(t, b)| (*t, &b[..])).collect();
        let world = World {
            read_max: rng.random_range(1..100),
            write_max: rng.random_range(1..100),
            limit: 10_000_000,
            ..World::new(&script, Some(t))
        };
        let mut bufs = Bufs::new(rng.random_range(1..64), 64);
        let (r, _) = run(kind, &world, &mut bufs, ServeOptions::new(), |_| {}, None);
        assert_eq!(r.unwrap(), Served::Eof);
        let text = world.text();
        match &seen {
            None => seen = Some(text),
            Some(s) => assert_eq!(&text, s, "round {round} ({kind:?})"),
        }
    }
    // Every request of the transcript got its reply.
    let out = seen.unwrap();
    assert_eq!(
        out.matches("\r\n").count(),
        1 + c2s.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()
    );
}

// ---------------------------------------------------------------------------
// Client drivers

const SERVER: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n\
    {\"return\": {}}\r\n";

fn status_reply(id: u64) -> Vec<u8> {
    format!(
        "{{\"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}, \"event\": \"STOP\"}}\r\n{{\"return\": {{\"status\": \"paused\", \"running\": false}}, \"id\": {id}}}\r\n"
    )
    .into_bytes()
}

#[test]
fn client_drivers_negotiate_execute_and_see_events() {
    for kind in KINDS {
        let reply = status_reply(1);
        let world = World::new(&[(0, SERVER), (50, &reply)], None);
        let (mut fb, mut rx, mut tx) = (vec![0u8; 1024], vec![0u8; 32], vec![0u8; 128]);
        let mut client = Client::new(&mut fb[..]);
        let mut events = Vec::new();
        let running = match kind {
            Kind::Blocking => {
                let mut d = blocking::BlockingDriver::new(Pump::new(&mut rx, &mut tx));
                let mut io = Wire(&world);
                d.negotiate(
                    &mut client,
                    &mut io,
                    || world.clock(),
                    |e| events.push(format!("{e:?}")),
                )
                .unwrap();
                let t = d
                    .execute(
                        &mut client,
                        &mut io,
                        world.clock(),
                        &QueryStatus,
                        ExecuteOptions::new(),
                    )
                    .unwrap();
                let o = d
                    .run_until(
                        &mut client,
                        &mut io,
                        t,
                        || world.clock(),
                        |e| events.push(format!("{e:?}")),
                    )
                    .unwrap();
                o.decode::<QueryStatus>().unwrap().running
            }
            Kind::Async => {
                let mut d = asynch::AsyncDriver::new(Pump::new(&mut rx, &mut tx));
                let (mut r, mut w) = (AsyncWire(&world), AsyncWire(&world));
                embassy_futures::block_on(async {
                    d.negotiate(&mut client, &mut r, &mut w, &world, |e| {
                        events.push(format!("{e:?}"))
                    })
                    .await
                    .unwrap();
                    let t = d
                        .execute(
                            &mut client,
                            &mut w,
                            world.clock(),
                            &QueryStatus,
                            ExecuteOptions::new(),
                        )
                        .await
                        .unwrap();
                    let o = d
                        .run_until(&mut client, &mut r, &mut w, t, &world, |e| {
                            events.push(format!("{e:?}"))
                        })
                        .await
                        .unwrap();
                    o.decode::<QueryStatus>().unwrap().running
                })
            }
        };
        assert!(!running, "{kind:?}");
        assert_eq!(events.len(), 3, "{kind:?}: {events:?}");
        assert!(
            events[0].starts_with("Greeting")
                && events[1].starts_with("Negotiated")
                && events[2].contains("STOP"),
            "{events:?}"
        );
        assert_eq!(
            world.text(),
            "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}{\"execute\":\"query-status\",\"id\":1}"
        );
    }
}

#[test]
fn client_drivers_resolve_each_request_once_at_eof_mid_reply() {
    for kind in KINDS {
        let world = World::new(
            &[(0, SERVER), (10, b"{\"return\": {\"status\": \"pau")],
            Some(20),
        );
        let (mut fb, mut rx, mut tx) = (vec![0u8; 1024], vec![0u8; 32], vec![0u8; 128]);
        let mut client = Client::new(&mut fb[..]);
        let mut resolved = Vec::new();
        let on = |e: &ClientEvent<'_>, v: &mut Vec<String>| {
            if let ClientEvent::Resolved { outcome, .. } = e {
                v.push(format!("{outcome:?}"));
            }
        };
        let (first, second) = match kind {
            Kind::Blocking => {
                let mut d = blocking::BlockingDriver::new(Pump::new(&mut rx, &mut tx));
                let mut io = Wire(&world);
                d.negotiate(&mut client, &mut io, || world.clock(), |_| {})
                    .unwrap();
                let t1 = d
                    .execute_raw(
                        &mut client,
                        &mut io,
                        world.clock(),
                        "query-status",
                        None,
                        ExecuteOptions::new(),
                    )
                    .unwrap();
                let t2 = d
                    .execute_raw(
                        &mut client,
                        &mut io,
                        world.clock(),
                        "query-name",
                        None,
                        ExecuteOptions::new(),
                    )
                    .unwrap();
                let o1 = format!(
                    "{:?}",
                    d.run_until(
                        &mut client,
                        &mut io,
                        t1,
                        || world.clock(),
                        |e| on(e, &mut resolved)
                    )
                    .unwrap()
                );
                let o2 = format!(
                    "{:?}",
                    d.run_until(
                        &mut client,
                        &mut io,
                        t2,
                        || world.clock(),
                        |e| on(e, &mut resolved)
                    )
                    .unwrap()
                );
                assert!(matches!(
                    d.run_until(&mut client, &mut io, t2, || world.clock(), |_| {}),
                    Err(DriveError::UnknownToken)
                ));
                (o1, o2)
            }
            Kind::Async => {
                let mut d = asynch::AsyncDriver::new(Pump::new(&mut rx, &mut tx));
                let (mut r, mut w) = (AsyncWire(&world), AsyncWire(&world));
                embassy_futures::block_on(async {
                    d.negotiate(&mut client, &mut r, &mut w, &world, |_| {})
                        .await
                        .unwrap();
                    let t1 = d
                        .execute_raw(
                            &mut client,
                            &mut w,
                            world.clock(),
                            "query-status",
                            None,
                            ExecuteOptions::new(),
                        )
                        .await
                        .unwrap();
                    let t2 = d
                        .execute_raw(
                            &mut client,
                            &mut w,
                            world.clock(),
                            "query-name",
                            None,
                            ExecuteOptions::new(),
                        )
                        .await
                        .unwrap();
                    let o1 = format!(
                        "{:?}",
                        d.run_until(&mut client, &mut r, &mut w, t1, &world, |e| on(
                            e,
                            &mut resolved
                        ))
                        .await
                        .unwrap()
                    );
                    let o2 = format!(
                        "{:?}",
                        d.run_until(&mut client, &mut r, &mut w, t2, &world, |e| on(
                            e,
                            &mut resolved
                        ))
                        .await
                        .unwrap()
                    );
                    (o1, o2)
                })
            }
        };
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("Disconnected", "Disconnected"),
            "{kind:?}"
        );
        assert!(
            resolved.is_empty(),
            "{kind:?}: resolved twice: {resolved:?}"
        );
    }
}

#[test]
fn client_drivers_time_out_on_a_silent_peer() {
    for kind in KINDS {
        let world = World::new(&[(0, SERVER)], None);
        let (mut fb, mut rx, mut tx) = (vec![0u8; 1024], vec![0u8; 32], vec![0u8; 128]);
        let mut client = Client::new(&mut fb[..]);
        let opts = ExecuteOptions::new().timeout_ms(300);
        let out = match kind {
            Kind::Blocking => {
                let mut d = blocking::BlockingDriver::new(Pump::new(&mut rx, &mut tx));
                // Reads do not block: the world tells readiness.
                let mut io = Wire(&world);
                d.negotiate(&mut client, &mut io, || world.clock(), |_| {})
                    .unwrap();
                let t = d
                    .execute(&mut client, &mut io, world.clock(), &QueryStatus, opts)
                    .unwrap();
                format!(
                    "{:?}",
                    d.run_until(&mut client, &mut io, t, || world.clock(), |_| {})
                        .unwrap()
                )
            }
            Kind::Async => {
                let mut d = asynch::AsyncDriver::new(Pump::new(&mut rx, &mut tx));
                let (mut r, mut w) = (AsyncWire(&world), AsyncWire(&world));
                embassy_futures::block_on(async {
                    d.negotiate(&mut client, &mut r, &mut w, &world, |_| {})
                        .await
                        .unwrap();
                    let t = d
                        .execute(&mut client, &mut w, world.clock(), &QueryStatus, opts)
                        .await
                        .unwrap();
                    format!(
                        "{:?}",
                        d.run_until(&mut client, &mut r, &mut w, t, &world, |_| {})
                            .await
                            .unwrap()
                    )
                })
            }
        };
        assert_eq!(out, "Timeout", "{kind:?}");
        let now = world.peek_now();
        assert!((300..400).contains(&now), "{kind:?}: timed out at {now}");
    }
}

#[test]
#[cfg(feature = "qga")]
fn guest_agent_sync_through_the_drivers() {
    for kind in KINDS {
        let world = World::new(
            &[(0, b"{\"return\": 7}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\xff{\"return\": 4242}\n"), (5, b"{\"return\": {}, \"id\": 1}\n")],
            None,
        );
        let (mut fb, mut rx, mut tx) = (vec![0u8; 1024], vec![0u8; 32], vec![0u8; 128]);
        let mut qga = QgaClient::new(&mut fb[..]);
        let ping = match kind {
            Kind::Blocking => {
                let mut d = blocking::BlockingDriver::new(Pump::new(&mut rx, &mut tx));
                let mut io = Wire(&world);
                d.sync(
                    &mut qga,
                    &mut io,
                    4242,
                    Instant::from_millis(1000),
                    || world.clock(),
                    |_| {},
                )
                .unwrap();
                let t = d
                    .execute_raw(
                        &mut qga,
                        &mut io,
                        world.clock(),
                        "guest-ping",
                        None,
                        ExecuteOptions::new(),
                    )
                    .unwrap();
                matches!(
                    d.run_until(&mut qga, &mut io, t, || world.clock(), |_| {})
                        .unwrap(),
                    qmp_core::client::Outcome::Return(_)
                )
            }
            Kind::Async => {
                let mut d = asynch::AsyncDriver::new(Pump::new(&mut rx, &mut tx));
                let (mut r, mut w) = (AsyncWire(&world), AsyncWire(&world));
                embassy_futures::block_on(async {
                    d.sync(
                        &mut qga,
                        &mut r,
                        &mut w,
                        4242,
                        Instant::from_millis(1000),
                        &world,
                        |_| {},
                    )
                    .await
                    .unwrap();
                    let t = d
                        .execute_raw(
                            &mut qga,
                            &mut w,
                            world.clock(),
                            "guest-ping",
                            None,
                            ExecuteOptions::new(),
                        )
                        .await
                        .unwrap();
                    matches!(
                        d.run_until(&mut qga, &mut r, &mut w, t, &world, |_| {})
                            .await
                            .unwrap(),
                        qmp_core::client::Outcome::Return(_)
                    )
                })
            }
        };
        assert!(ping, "{kind:?}");
        assert_eq!(
            world.output.borrow().as_slice(),
            &b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":4242}}{\"execute\":\"guest-ping\",\"id\":1}"[..]
        );
    }
}

// ---------------------------------------------------------------------------
// No allocation; future sizes

#[test]
fn async_drivers_allocate_nothing_and_their_futures_are_small() {
    let mut input = NEGOTIATE.to_vec();
    for i in 0..10 {
        input.extend_from_slice(format!(r#"{{"execute":"query-status","id":{i}}}"#).as_bytes());
    }
    let world = World::new(&[(0, &input)], Some(0));
    let mut bufs = Bufs::new(64, 64);
    let cfg = AgentConfig::new((10, 0, 0), "", COMMANDS);
    let mut agent = Agent::new(
        cfg,
        AgentBuffers::new(&mut bufs.f, &mut bufs.q, &mut bufs.o),
    )
    .unwrap();
    let mut pump = Pump::new(&mut bufs.rx, &mut bufs.tx);
    let signal = Cell::new(false);
    let mut app = AsyncMonitor {
        m: Monitor::new(&world),
        signal: &signal,
    };
    let (mut r, mut w) = (AsyncWire(&world), AsyncWire(&world));
    let mut size = 0;
    let (served, allocs) = counting::count_allocs(|| {
        let fut = asynch::serve(
            &mut agent,
            &mut r,
            &mut w,
            &mut pump,
            ServeOptions::new(),
            &world,
            &mut app,
        );
        size = core::mem::size_of_val(&fut);
        embassy_futures::block_on(fut)
    });
    println!("size_of_val(asynch::serve future) = {size} bytes");
    assert_eq!(served.unwrap(), Served::Eof);
    assert_eq!(allocs, 0, "the async agent driver allocated");
    assert!(size < 1024, "{size}");
    assert!(world.text().ends_with("\"id\": 9}\r\n"));

    let reply = status_reply(1);
    let world = World::new(&[(0, SERVER), (5, &reply)], None);
    let (mut fb, mut rx, mut tx) = (vec![0u8; 1024], vec![0u8; 32], vec![0u8; 128]);
    let mut client = Client::new(&mut fb[..]);
    let mut d = asynch::AsyncDriver::new(Pump::new(&mut rx, &mut tx));
    let (mut r, mut w) = (AsyncWire(&world), AsyncWire(&world));
    let (mut negotiate, mut run_until) = (0, 0);
    let (running, allocs) = counting::count_allocs(|| {
        embassy_futures::block_on(async {
            let n = d.negotiate(&mut client, &mut r, &mut w, &world, |_| {});
            negotiate = core::mem::size_of_val(&n);
            n.await.unwrap();
            let t = d
                .execute(
                    &mut client,
                    &mut w,
                    world.clock(),
                    &QueryStatus,
                    ExecuteOptions::new(),
                )
                .await
                .unwrap();
            let u = d.run_until(&mut client, &mut r, &mut w, t, &world, |_| {});
            run_until = core::mem::size_of_val(&u);
            u.await.unwrap().decode::<QueryStatus>().unwrap().running
        })
    });
    println!("size_of_val(asynch::AsyncDriver::negotiate future) = {negotiate} bytes");
    println!("size_of_val(asynch::AsyncDriver::run_until future) = {run_until} bytes");
    assert!(!running);
    assert_eq!(allocs, 0, "the async client driver allocated");
}
