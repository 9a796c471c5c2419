//! Running the JavaScript clients in `conformance/js` (installed by `scripts/test.sh` with
//! `npm ci`) under node.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The directory holding `package.json` and the scripts.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// A running node script and its stdout, line by line.
pub struct NodeScript {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NodeScript {
    /// Starts `script` (in `conformance/js`) with `args`. Panics, never skips, when node or
    /// the packages are missing: `scripts/test.sh` installs them.
    pub fn start(script: &str, args: &[&str]) -> NodeScript {
        Self::spawn(script, args, &["--experimental-websocket"], &[])
    }

    /// [`Self::start`] with extra environment variables (e.g. `NODE_EXTRA_CA_CERTS`).
    pub fn start_with_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> NodeScript {
        Self::spawn(script, args, &["--experimental-websocket"], env)
    }

    /// Starts `script` without node flags (scripts that need no WebSocket of node's own).
    pub fn start_plain(script: &str, args: &[&str]) -> NodeScript {
        Self::spawn(script, args, &[], &[])
    }

    fn spawn(script: &str, args: &[&str], flags: &[&str], env: &[(&str, &str)]) -> NodeScript {
        let node = std::env::var("SWITCHBOARD_TEST_NODE").unwrap_or_else(|_| "node".into());
        assert!(
            dir().join("node_modules/@xmpp/client").exists(),
            "conformance/js/node_modules is missing: run scripts/test.sh (it runs npm ci there)"
        );
        let version = std::process::Command::new(&node)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {node} (install nodejs; .ci/run does): {e}"));
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let parts: Vec<u32> = version
            .trim_start_matches('v')
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        assert!(
            parts.len() >= 2 && (parts[0], parts[1]) >= (20, 10),
            "node {version}: @xmpp/client needs node >= 20.10"
        );
        let mut child = Command::new(&node)
            // Node 20 has the WHATWG WebSocket @xmpp/websocket uses behind a flag.
            .args(flags)
            .arg(dir().join(script))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {node} (install nodejs; scripts/test.sh): {e}"));
        let stdout = child.stdout.take().expect("stdout");
        NodeScript {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line the script prints, within `d`.
    pub async fn line(&mut self, d: Duration) -> String {
        match tokio::time::timeout(d, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!("the node script ended: {:?}", self.child.try_wait()),
            Err(_) => panic!("no line from the node script within {d:?}"),
        }
    }

    /// Waits for the script to exit; its exit code.
    pub async fn exit_code(mut self, d: Duration) -> Option<i32> {
        tokio::time::timeout(d, self.child.wait())
            .await
            .expect("the node script exits in time")
            .expect("wait")
            .code()
    }
}
