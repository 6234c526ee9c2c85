//! The stdio backend: the MCP server as our child process.
//!
//! The bridge is PID 1 of the MCP container, so it forwards SIGTERM/SIGINT to the server, reaps
//! it, and exits with its status so that Kubernetes restarts the container when the server dies.

use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Longest stderr line logged whole; the rest of a longer line is cut.
const MAX_STDERR_LINE: usize = 16 * 1024;

/// A spawned server with its pipes taken out.
pub struct ServerProcess {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
}

/// Spawns `command` with piped stdin/stdout, without the environment variables in `hidden`
/// (the bridge's own secrets); its stderr is logged line by line.
pub fn spawn(command: &[String], hidden: &[String]) -> anyhow::Result<ServerProcess> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no server command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in hidden {
        cmd.env_remove(var);
    }
    set_parent_death_signal(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the MCP server {program:?}: {e}"))?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr));
    }
    Ok(ServerProcess {
        child,
        stdin,
        stdout,
    })
}

/// Spawns `command` for an HTTP backend: it serves on its own port, so both of its output
/// streams are only logs. Without the environment variables in `hidden`, as [`spawn`].
pub fn spawn_logged(command: &[String], hidden: &[String]) -> anyhow::Result<Child> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no server command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in hidden {
        cmd.env_remove(var);
    }
    set_parent_death_signal(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the MCP server {program:?}: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(log_stderr(stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr));
    }
    Ok(child)
}

fn set_parent_death_signal(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's state. When the
    // bridge dies without reaping (SIGKILL, a crash), the server must not live on unowned.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Logs one of the server's output streams, one event per line, tagged as the server's.
async fn log_stderr<R: AsyncRead + Unpin>(stderr: R) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded: read at most MAX_STDERR_LINE bytes of a line, then skip to its end.
        let mut limited = (&mut reader).take(MAX_STDERR_LINE as u64);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cut = !line.ends_with(b"\n");
        if cut {
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let mut limited = (&mut reader).take(MAX_STDERR_LINE as u64);
                match limited.read_until(b'\n', &mut rest).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.ends_with(b"\n") => break,
                    Ok(_) => {}
                }
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(target: "mcp_server", cut, "{text}");
        }
    }
}

use tokio::io::AsyncReadExt as _;

/// Sends `signal` to the child (if it is still running).
pub fn signal(child: &Child, signal: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid, which stays ours until we reap it.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// The exit code a shell would report: the status, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    }
}
