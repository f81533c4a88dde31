// qmp-std/examples/tokio_client.rs
use qmp_std::client::Config;
use qmp_std::tokio::AsyncClient;
use std::time::Duration;

/// The same on tokio: a `Clone + Send` handle whose connection a driver
/// task runs; the subscription is a `Stream` with a bounded queue that
/// counts what it dropped.
async fn format_image(socket: &str) -> Result<(), qmp_std::Error> {
    let qmp = AsyncClient::connect_unix(socket, Config::new()).await?;
    let version: serde_json::Value = qmp.execute("query-version", &()).await?;
    println!("QEMU {}", version["qemu"]);
    qmp.execute_raw(
        "blockdev-add",
        Some(r#"{"driver": "null-co", "node-name": "n0"}"#),
    )
    .await?;
    let mut jobs = qmp.subscribe(&["JOB_STATUS_CHANGE"]);
    qmp.execute_raw(
        "blockdev-create",
        Some(r#"{"job-id": "j1", "options": {"driver": "qcow2", "file": "n0", "size": 1048576}}"#),
    )
    .await?;
    let done = jobs
        .wait_for(
            |e| e.data_json().is_some_and(|d| d.contains(r#""concluded""#)),
            Some(Duration::from_secs(5)),
        )
        .await?;
    println!("{done:?} ({} events dropped)", jobs.dropped());
    Ok(())
}
// (end of the README block)

/// Runs the example against a qemu-storage-daemon of its own.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("qmp-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("qmp.sock");
    let chardev = format!("socket,path={},server=on,wait=off,id=m0", sock.display());
    let Ok(mut qsd) = std::process::Command::new("qemu-storage-daemon")
        .args(["--chardev", &chardev, "--monitor", "chardev=m0"])
        .spawn()
    else {
        println!("qemu-storage-daemon is not installed");
        return;
    };
    let result = format_image(&sock.to_string_lossy()).await;
    let _ = qsd.kill();
    let _ = qsd.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
