// qmp-core/examples/async_client.rs
use qmp_core::client::commands::QueryStatus;
use qmp_core::client::{Client, ExecuteOptions};
use qmp_core::drive::asynch::{AsyncDriver, Clock};
use qmp_core::drive::DriveError;
use qmp_core::pump::Pump;

/// Connects over a monitor's UART, negotiates, and asks whether the guest runs.
async fn running<R, W>(
    rx_half: &mut R,
    tx_half: &mut W,
    clock: &impl Clock,
) -> Result<bool, DriveError<R::Error>>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write<Error = R::Error>,
{
    let (mut framer, mut rx, mut tx) = ([0u8; 1024], [0u8; 64], [0u8; 128]);
    let mut client = Client::new(&mut framer[..]);
    let mut driver = AsyncDriver::new(Pump::new(&mut rx, &mut tx));
    driver
        .negotiate(&mut client, rx_half, tx_half, clock, |_| {})
        .await?;
    let options = ExecuteOptions::new().timeout_ms(1000);
    let token = driver
        .execute(&mut client, tx_half, clock.now(), &QueryStatus, options)
        .await?;
    let outcome = driver
        .run_until(&mut client, rx_half, tx_half, token, clock, |_event| {})
        .await?;
    Ok(outcome.decode::<QueryStatus>().is_ok_and(|s| s.running))
}

// (end of the README block)

/// A canned monitor: greeting, negotiation, the status.
struct Monitor(&'static [u8]);

impl embedded_io_async::ErrorType for Monitor {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Monitor {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

impl embedded_io_async::Write for Monitor {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(buf.len())
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A clock that stands still (nothing here waits).
struct Frozen;

impl Clock for Frozen {
    fn now(&self) -> qmp_core::Instant {
        qmp_core::Instant::ZERO
    }
    fn at(&self, _: qmp_core::Instant) -> impl core::future::Future<Output = ()> {
        core::future::pending()
    }
}

fn main() {
    let mut rx = Monitor(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"return\": {}}\r\n{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n");
    let mut tx = Monitor(b"");
    let up = embassy_futures::block_on(running(&mut rx, &mut tx, &Frozen));
    println!("running: {up:?}");
    assert!(up.unwrap());
}
