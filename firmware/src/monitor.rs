//! The firmware agent's monitor: its commands, its events, and how it
//! answers (the agent image serves it on the UART; the benchmark image on
//! replayed input).
//!
//! Commands: `qmp_capabilities`, `query-version`, `query-commands`,
//! `query-status`, `stop` / `cont` (with `STOP` / `RESUME` before the
//! reply), `x-sleep` (`{"ms": N}`: answered N ms later without blocking
//! the loop; allowed as `exec-oob`, so one can overtake an in-band one) and
//! `x-query-firmware` (the board, stack high-water mark, static RAM and
//! uptime). Events: `HEARTBEAT` (`{"uptime-ms": N}`), emitted every 250 ms
//! and throttled to one a second, while negotiated.
//!
//! Event timestamps are the time since reset (the boards have no wall
//! clock): `seconds` and `microseconds` of the SysTick millisecond clock.
//!
//! Nothing is dropped: a reply (or an event before its reply) that finds
//! the output full waits in its slot and is retried after the loop
//! transmitted (`CompleteError::OutputFull` hands the token back).

use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, CompleteError, EmitError, EventOut, Incoming,
    Reply, ReplyToken, Throttle,
};
use qmp_core::encode::{Verbatim, WriteJson};
use qmp_core::json::RawJson;
use qmp_core::message::Exec;
use qmp_core::schema::decl::{MemberDecl, ObjectDecl, TypeDecl};
use qmp_core::Instant;

use crate::{board, stack};

/// Arguments: none (the agent answers `Parameter 'x' is unexpected`), and
/// `x-sleep`'s `ms` (the agent answers QEMU's texts when it is missing or
/// not an integer). The application only sees valid requests.
static NO_ARGS: ObjectDecl<'static> = ObjectDecl::new("q_empty", &[]);
static SLEEP_ARGS: ObjectDecl<'static> =
    ObjectDecl::new("q_obj_x-sleep-arg", &[MemberDecl::new("ms", TypeDecl::INT)]);

pub static COMMANDS: [CommandSpec<'static>; 7] = [
    CommandSpec::new("query-version").with_arguments(&NO_ARGS),
    CommandSpec::new("query-commands").with_arguments(&NO_ARGS),
    CommandSpec::new("query-status").with_arguments(&NO_ARGS),
    CommandSpec::new("stop").with_arguments(&NO_ARGS),
    CommandSpec::new("cont").with_arguments(&NO_ARGS),
    CommandSpec::new("x-sleep")
        .with_arguments(&SLEEP_ARGS)
        .oob(),
    CommandSpec::new("x-query-firmware").with_arguments(&NO_ARGS),
];

/// The heartbeat: emitted every tick, at most one a second goes out.
const HEARTBEAT: &str = "HEARTBEAT";
pub static THROTTLE: [Throttle<'static>; 1] = [Throttle::new(HEARTBEAT, 1000)];
const HEARTBEAT_MS: u64 = 250;
/// How often the loop runs the application while the peer is silent: the
/// granularity of `x-sleep`.
pub const TICK_MS: u64 = 5;

pub const VERSION: (u64, u64, u64) = (0, 1, 0);
pub const PACKAGE: &str = "qmp-firmware";

fn raw(bytes: &'static [u8]) -> Verbatim<'static> {
    Verbatim(RawJson::assume_validated(bytes))
}

/// What a request is answered with, once due.
#[derive(Clone, Copy)]
enum Answer {
    Version,
    Status,
    Empty,
    /// `STOP` or `RESUME` first, then `{}`.
    Event(&'static str),
    Firmware,
}

/// A request being answered: in-band and `exec-oob` each have one slot
/// (the agent hands out one in-band request at a time, and reads no input
/// while an OOB one is being handled).
struct Pending {
    token: ReplyToken,
    answer: Answer,
    /// When it is answered (`x-sleep`), or at once.
    due: Instant,
}

pub struct Monitor {
    running: bool,
    /// When the next heartbeat is emitted.
    heartbeat_at: Instant,
    slots: [Option<Pending>; 2],
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            running: true,
            heartbeat_at: Instant::ZERO,
            slots: [None, None],
        }
    }
}

impl Monitor {
    /// Takes what the agent handed out, into the slot of its kind.
    fn accept(&mut self, req: Incoming<'_>, now: Instant) {
        let slot = usize::from(req.exec == Exec::ExecOob);
        let (answer, delay) = decide(&req, self.running);
        if let Answer::Event(name) = answer {
            self.running = name == "RESUME";
        }
        let pending = Pending {
            token: req.token,
            answer,
            due: now.saturating_add_millis(delay),
        };
        // A slot is free: the agent hands out nothing else of this kind
        // until the request in it is answered.
        self.slots[slot] = Some(pending);
    }

    /// Answers what is due; what finds the output full stays, for the
    /// next turn (after `serve` transmitted).
    fn answer_due(&mut self, agent: &mut Agent<'_, '_>, now: Instant) {
        for slot in self.slots.iter_mut() {
            let Some(p) = slot.take() else { continue };
            if p.due > now {
                *slot = Some(p);
                continue;
            }
            *slot = answer(agent, p, now, self.running);
        }
    }

    pub fn serve(&mut self, agent: &mut Agent<'_, '_>, now: Instant) {
        loop {
            self.answer_due(agent, now);
            if self.slots.iter().all(Option::is_some) {
                break;
            }
            let Some(req) = agent.poll_request() else {
                break;
            };
            self.accept(req, now);
        }
        self.heartbeat(agent, now);
    }

    fn heartbeat(&mut self, agent: &mut Agent<'_, '_>, now: Instant) {
        if !agent.is_negotiated() || now < self.heartbeat_at {
            return;
        }
        self.heartbeat_at = now.saturating_add_millis(HEARTBEAT_MS);
        let up = now.as_millis();
        let (s, us) = timestamp(now);
        let data = Uptime(up);
        let ev = EventOut::new(HEARTBEAT).data(&data).timestamp(s, us);
        // Throttled: one goes out a second, the rest replace it. With no
        // room now it is skipped: the next tick brings a newer one.
        let _ = agent.emit(now, &ev);
    }
}

/// `{"uptime-ms": N}`.
struct Uptime(u64);

impl WriteJson for Uptime {
    fn write_json(
        &self,
        w: &mut qmp_core::encode::JsonWriter<'_>,
    ) -> Result<(), qmp_core::encode::EncodeError> {
        let mut buf = [0u8; 40];
        let n = json_object_u64(&mut buf, b"uptime-ms", self.0);
        Verbatim(RawJson::assume_validated(buf.get(..n).unwrap_or_default())).write_json(w)
    }
}

/// `{"KEY": N}` into `buf` (keys are ours: plain ASCII).
fn json_object_u64(buf: &mut [u8], key: &[u8], v: u64) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if let Some(slot) = buf.get_mut(n) {
                *slot = b;
                n += 1;
            }
        }
    };
    put(b"{\"");
    put(key);
    put(b"\": ");
    let mut digits = [0u8; 20];
    put(decimal(&mut digits, v));
    put(b"}");
    n
}

/// `v` in decimal, in the end of `buf`.
pub fn decimal(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    // (20 digits hold any `u64`: no bounds check fails.)
    while let Some(slot) = i.checked_sub(1).and_then(|j| buf.get_mut(j)) {
        i -= 1;
        let (q, r) = div_rem(v, 10);
        *slot = b'0' + r as u8;
        v = q;
        if v == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// `n / d` and `n % d` in 32-bit steps (16 bits of `n` at a time; `d` is
/// a constant where it is inlined): no 64-bit division routine, which
/// costs about 1 KB of flash on these cores.
#[inline(always)]
pub fn div_rem(n: u64, d: u16) -> (u64, u32) {
    let d = u32::from(d);
    let (mut q, mut r) = (0u64, 0u32);
    let mut shift = 64;
    while shift > 0 {
        shift -= 16;
        // `r < d < 2^16`: fits.
        let cur = (r << 16) | ((n >> shift) as u32 & 0xFFFF);
        q |= u64::from(cur / d) << shift;
        r = cur % d;
    }
    (q, r)
}

fn timestamp(now: Instant) -> (i64, i64) {
    let (s, ms) = div_rem(now.as_millis(), 1000);
    (s as i64, i64::from(ms * 1000))
}

/// What a request gets, and after how many milliseconds (the agent checked
/// the arguments against the declarations).
fn decide(req: &Incoming<'_>, running: bool) -> (Answer, u64) {
    let name = req.name;
    // (`eq_str` compares lengths first: only a name of the same length is
    // compared, and looked at for escapes.)
    let is = |s: &str| name.eq_str(s);
    if is("x-sleep") {
        let ms = req
            .arguments
            .and_then(|a| a.get("ms"))
            .and_then(|ms| ms.as_i64())
            .unwrap_or(0);
        return (Answer::Empty, ms.max(0) as u64);
    }
    let answer = if is("query-version") {
        Answer::Version
    } else if is("query-status") {
        Answer::Status
    } else if is("stop") {
        Answer::Event("STOP")
    } else if is("cont") {
        Answer::Event("RESUME")
    } else if is("x-query-firmware") {
        Answer::Firmware
    } else {
        Answer::Empty
    };
    // `stop` while stopped and `cont` while running: no event, as in QEMU.
    match answer {
        Answer::Event("STOP") if !running => (Answer::Empty, 0),
        Answer::Event("RESUME") if running => (Answer::Empty, 0),
        a => (a, 0),
    }
}

/// Completes `p` (its event first); gives it back when the output is full.
fn answer(
    agent: &mut Agent<'_, '_>,
    mut p: Pending,
    now: Instant,
    running: bool,
) -> Option<Pending> {
    if let Answer::Event(name) = p.answer {
        let (s, us) = timestamp(now);
        match agent.emit(now, &EventOut::new(name).timestamp(s, us)) {
            Err(EmitError::OutputFull { .. }) => return Some(p),
            // Sent (or, never fitting, impossible for these), then the reply.
            _ => p.answer = Answer::Empty,
        }
    }
    let fixed: &'static [u8] = match p.answer {
        Answer::Version => {
            b"{\"qemu\": {\"micro\": 0, \"minor\": 1, \"major\": 0}, \"package\": \"qmp-firmware\"}"
        }
        Answer::Status if running => b"{\"status\": \"running\", \"running\": true}",
        Answer::Status => b"{\"status\": \"paused\", \"running\": false}",
        Answer::Empty | Answer::Event(_) => b"{}",
        Answer::Firmware => b"",
    };
    // One `complete` for the fixed replies (a call site less of it).
    let r = if let Answer::Firmware = p.answer {
        let mut stats = [0u8; 160];
        let n = firmware_stats(&mut stats, now);
        agent.complete(
            p.token,
            Reply::Return(&Verbatim(RawJson::assume_validated(
                stats.get(..n).unwrap_or_default(),
            ))),
        )
    } else {
        agent.complete(p.token, Reply::Return(&raw(fixed)))
    };
    match r {
        Err(CompleteError::OutputFull { token, .. }) => Some(Pending {
            token,
            answer: p.answer,
            due: p.due,
        }),
        // Answered (by the agent with an error, if the reply never fits).
        _ => None,
    }
}

/// `{"board": …, "stack-high-water": …, "static-ram": …, "uptime-ms": …}`.
fn firmware_stats(buf: &mut [u8], now: Instant) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if let Some(slot) = buf.get_mut(n) {
                *slot = b;
                n += 1;
            }
        }
    };
    let mut d = [0u8; 20];
    put(b"{\"board\": \"");
    put(board::NAME.as_bytes());
    put(b"\", \"stack-high-water\": ");
    put(decimal(&mut d, stack::high_water() as u64));
    put(b", \"static-ram\": ");
    put(decimal(&mut d, stack::static_ram() as u64));
    put(b", \"uptime-ms\": ");
    put(decimal(&mut d, now.as_millis()));
    put(b"}");
    n
}

/// The agent's configuration.
pub fn config() -> AgentConfig<'static> {
    AgentConfig::new(VERSION, PACKAGE, &COMMANDS).with_throttle(&THROTTLE)
}

/// The agent's buffers: 512-byte requests; the in-band queue: input is read
/// while it has room for one more request of the largest size, so here
/// while the queued requests take at most 256 bytes (a slow `x-sleep`
/// running, an `exec-oob` read behind it); 512 bytes of output; one
/// throttled event.
pub struct Buffers {
    framer: [u8; 512],
    queue: [u8; QUEUE_LEN],
    out: [u8; 512],
    throttled: [u8; 96],
}

const QUEUE_LEN: usize = AgentBuffers::queue_required(512) + 256;

impl Buffers {
    /// Zeroed buffers (for a `static`).
    pub const fn new() -> Self {
        Buffers {
            framer: [0; 512],
            queue: [0; QUEUE_LEN],
            out: [0; 512],
            throttled: [0; 96],
        }
    }

    /// A fresh agent on these buffers.
    pub fn agent(&mut self) -> Option<Agent<'static, '_>> {
        let bufs = AgentBuffers::new(&mut self.framer, &mut self.queue, &mut self.out)
            .with_throttle(&mut self.throttled);
        Agent::new(config(), bufs).ok()
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}
