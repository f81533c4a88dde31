// qmp-core/examples/async_agent.rs
use core::cell::Cell;
use core::future::{poll_fn, Future};
use core::ops::ControlFlow;
use core::task::Poll;
use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, EventOut, Reply};
use qmp_core::drive::asynch::{serve, App, Clock};
use qmp_core::drive::ServeOptions;
use qmp_core::pump::Pump;
use qmp_core::Instant;

static COMMANDS: [CommandSpec<'static>; 1] = [CommandSpec::new("query-status")];

/// Answers `query-status`; emits `BUTTON` when another task sets `pressed`.
struct Monitor<'s> {
    pressed: &'s Cell<bool>,
}

impl App for Monitor<'_> {
    fn serve(&mut self, agent: &mut Agent<'_, '_>, now: Instant) -> ControlFlow<()> {
        if self.pressed.replace(false) {
            let _ = agent.emit(now, &EventOut::new("BUTTON"));
        }
        let status = qmp_core::scan::validate(
            br#"{"status": "running", "running": true}"#,
            Default::default(),
        )
        .unwrap();
        while let Some(req) = agent.poll_request() {
            let token = req.token;
            let _ = agent.complete(token, Reply::Return(&status)); // small: always fits
        }
        ControlFlow::Continue(())
    }
    fn wake(&mut self) -> impl Future<Output = ()> {
        // A real firmware awaits its executor's signal here (cancel-safe).
        let pressed = self.pressed;
        poll_fn(move |cx| {
            if pressed.get() {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }
}

async fn run(
    rx_half: &mut impl embedded_io_async::Read<Error = core::convert::Infallible>,
    tx_half: &mut impl embedded_io_async::Write<Error = core::convert::Infallible>,
    clock: &impl Clock,
    pressed: &Cell<bool>,
) {
    let (mut framer, mut queue, mut out) = ([0u8; 512], [0u8; 1024], [0u8; 512]);
    let config = AgentConfig::new((0, 1, 0), "my-firmware", &COMMANDS);
    let mut agent =
        Agent::new(config, AgentBuffers::new(&mut framer, &mut queue, &mut out)).unwrap();
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
    let mut pump = Pump::new(&mut rx, &mut tx);
    let mut app = Monitor { pressed };
    let _ = serve(
        &mut agent,
        rx_half,
        tx_half,
        &mut pump,
        ServeOptions::new(),
        clock,
        &mut app,
    )
    .await;
}

// (end of the README block)

/// A canned host half: negotiates, asks for the status, then hangs up.
struct Host(&'static [u8]);

impl embedded_io_async::ErrorType for Host {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Host {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

struct Console;

impl embedded_io_async::ErrorType for Console {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Write for Console {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The process clock, in milliseconds.
struct Wall(std::time::Instant);

impl Clock for Wall {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
    fn at(&self, at: Instant) -> impl Future<Output = ()> {
        poll_fn(move |cx| {
            if self.now() >= at {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }
}

fn main() {
    let pressed = Cell::new(true);
    let mut host = Host(br#"{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}"#);
    embassy_futures::block_on(run(
        &mut host,
        &mut Console,
        &Wall(std::time::Instant::now()),
        &pressed,
    ));
}
