// qmp-std/examples/blocking_client.rs
use qmp_std::client::{Client, Config};
use std::time::Duration;

/// Connects (retrying until the monitor listens), asks the version, and
/// formats an image, waiting for the job's end through a subscription
/// taken before the command.
fn format_image(socket: &str) -> Result<(), qmp_std::Error> {
    let mut qmp = Client::connect_unix(socket, Config::new())?;
    let version: serde_json::Value = qmp.execute("query-version", &())?;
    println!("QEMU {}", version["qemu"]);
    qmp.execute_raw(
        "blockdev-add",
        Some(r#"{"driver": "null-co", "node-name": "n0"}"#),
    )?;
    let jobs = qmp.subscribe(&["JOB_STATUS_CHANGE"]);
    qmp.execute_raw(
        "blockdev-create",
        Some(r#"{"job-id": "j1", "options": {"driver": "qcow2", "file": "n0", "size": 1048576}}"#),
    )?;
    let done = qmp.wait_event_for(
        &jobs,
        |e| e.data_json().is_some_and(|d| d.contains(r#""concluded""#)),
        Some(Duration::from_secs(5)),
    )?;
    println!("{done:?}");
    Ok(())
}
// (end of the README block)

/// Runs the example against a qemu-storage-daemon of its own.
fn main() {
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
    let result = format_image(&sock.to_string_lossy());
    let _ = qsd.kill();
    let _ = qsd.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
