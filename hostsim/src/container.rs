//! What runs inside a simulated container: a few commands for `exec` (`echo`, `cat`,
//! `hostname`, `env`/`printenv`, `true`, `false`, `sleep`, and `sh -c` / an `sh` reading lines
//! from stdin for scripts of those joined by `;`, `&&`, `||` with `exit N` and `$VAR`), and what
//! `portforward` reaches on the ports a container declares. Nothing here touches the host: no
//! process is started and no socket opened.
//!
//! An image is assumed to be Debian-like (nginx's): `/bin/sh` is dash, so a missing command in a
//! script is `sh: 1: foo: not found` with status 127, and an `exec` of a missing executable fails
//! to start as runc reports it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

/// A container's side of an `exec` or `attach`: its standard streams.
pub struct Stdio {
    /// `None` when the client attached no stdin (reads see end of file at once).
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pub stdout: mpsc::Sender<Vec<u8>>,
    pub stderr: mpsc::Sender<Vec<u8>>,
    /// A terminal is attached: a shell reading stdin is interactive and prompts.
    pub tty: bool,
}

impl Stdio {
    async fn out(&self, text: impl Into<Vec<u8>>) {
        let _ = self.stdout.send(text.into()).await;
    }

    async fn err(&self, text: impl Into<Vec<u8>>) {
        let _ = self.stderr.send(text.into()).await;
    }

    async fn read(&mut self) -> Option<Vec<u8>> {
        match &mut self.stdin {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }
}

/// Why an `exec` did not run: runc's message, as containerd passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailed(pub String);

/// The container an `exec` runs in: its hostname and environment.
#[derive(Debug, Clone)]
pub struct Container {
    pub hostname: String,
    pub env: BTreeMap<String, String>,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Container {
    /// The container named `name` of `pod`: the environment the kubelet gives it (the image's
    /// `PATH`, `HOSTNAME`, the container's literal `env` values, the `kubernetes` Service's
    /// variables).
    pub fn of(pod: &Value, name: &str) -> Self {
        let hostname = pod
            .pointer("/spec/hostname")
            .and_then(Value::as_str)
            .unwrap_or_else(|| crate::object::name(pod))
            .to_string();
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), PATH.to_string());
        env.insert("HOSTNAME".to_string(), hostname.clone());
        env.insert("HOME".to_string(), "/root".to_string());
        for (k, v) in [
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.43.0.1:443"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        let spec = spec_of(pod, name);
        for e in spec.and_then(|c| c.get("env")).and_then(Value::as_array).into_iter().flatten() {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                env.insert(k.to_string(), v.to_string());
            }
        }
        Self { hostname, env }
    }

    /// Runs `argv` to completion: its exit status, or why it could not start.
    pub async fn exec(&self, argv: &[String], io: &mut Stdio) -> Result<i32, StartFailed> {
        let Some(program) = argv.first() else {
            return Err(not_found(""));
        };
        let base = program.rsplit('/').next().unwrap_or(program);
        if program.contains('/') && !KNOWN_PATHS.iter().any(|d| program == &format!("{d}/{base}")) {
            // runc stats an explicit path (runc libcontainer/standard_init_linux.go).
            return Err(StartFailed(format!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": stat {program}: no such file or directory"
            )));
        }
        if !COMMANDS.contains(&base) {
            return Err(not_found(program));
        }
        let mut env = self.env.clone();
        Ok(self.run(base, &argv[1..], io, &mut env).await)
    }

    async fn run(
        &self,
        cmd: &str,
        args: &[String],
        io: &mut Stdio,
        env: &mut BTreeMap<String, String>,
    ) -> i32 {
        match cmd {
            "echo" => {
                let (newline, args) = match args.first().map(String::as_str) {
                    Some("-n") => (false, &args[1..]),
                    _ => (true, args),
                };
                let mut text = args.join(" ");
                if newline {
                    text.push('\n');
                }
                io.out(text).await;
                0
            }
            "cat" => {
                if args.is_empty() || args.iter().all(|a| a == "-") {
                    while let Some(chunk) = io.read().await {
                        io.out(chunk).await;
                    }
                    return 0;
                }
                let mut status = 0;
                for a in args {
                    match a.as_str() {
                        "/etc/hostname" => io.out(format!("{}\n", self.hostname)).await,
                        _ => {
                            io.err(format!("cat: {a}: No such file or directory\n")).await;
                            status = 1;
                        }
                    }
                }
                status
            }
            "hostname" => {
                io.out(format!("{}\n", self.hostname)).await;
                0
            }
            "env" | "printenv" => {
                if let Some(name) = args.first().filter(|_| cmd == "printenv") {
                    return match env.get(name) {
                        Some(v) => {
                            io.out(format!("{v}\n")).await;
                            0
                        }
                        None => 1,
                    };
                }
                let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                io.out(text).await;
                0
            }
            "true" => 0,
            "false" => 1,
            "sleep" => {
                let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0))).await;
                0
            }
            "sh" | "bash" | "dash" => self.shell(args, io, env).await,
            _ => 127,
        }
    }

    /// `sh -c SCRIPT`, or `sh` reading commands line by line from stdin until `exit` or EOF.
    async fn shell(
        &self,
        args: &[String],
        io: &mut Stdio,
        env: &mut BTreeMap<String, String>,
    ) -> i32 {
        if args.first().map(String::as_str) == Some("-c") {
            let script = args.get(1).cloned().unwrap_or_default();
            return match self.script(&script, 1, io, env).await {
                Flow::Exit(code) | Flow::Next(code) => code,
            };
        }
        let mut status = 0;
        let mut pending = String::new();
        let mut line_no = 0;
        // dash's PS1 for root.
        if io.tty {
            io.out("# ").await;
        }
        while let Some(chunk) = io.read().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                line_no += 1;
                match self.script(line.trim_end(), line_no, io, env).await {
                    Flow::Exit(code) => return code,
                    Flow::Next(code) => status = code,
                }
                if io.tty {
                    io.out("# ").await;
                }
            }
        }
        status
    }

    /// Runs one script line: commands joined by `;`, `&&` and `||`.
    async fn script(
        &self,
        line: &str,
        line_no: usize,
        io: &mut Stdio,
        env: &mut BTreeMap<String, String>,
    ) -> Flow {
        let mut status = 0;
        let mut run_next = true;
        for (words, op) in split_script(line, env) {
            if run_next && !words.is_empty() {
                let words: Vec<String> =
                    words.into_iter().map(|w| w.replace("\u{0}?", &status.to_string())).collect();
                let name = words[0].rsplit('/').next().unwrap_or("").to_string();
                status = match name.as_str() {
                    "exit" => {
                        return Flow::Exit(
                            words.get(1).and_then(|c| c.parse::<i32>().ok()).unwrap_or(status)
                                & 0xff,
                        )
                    }
                    n if n.contains('=') && words.len() == 1 => {
                        if let Some((k, v)) = words[0].split_once('=') {
                            env.insert(k.to_string(), v.to_string());
                        }
                        0
                    }
                    n if COMMANDS.contains(&n) => Box::pin(self.run(n, &words[1..], io, env)).await,
                    _ => {
                        io.err(format!("sh: {line_no}: {}: not found\n", words[0])).await;
                        127
                    }
                };
            }
            run_next = match op {
                Some(Op::And) => status == 0,
                Some(Op::Or) => status != 0,
                _ => true,
            };
        }
        Flow::Next(status)
    }
}

enum Flow {
    Exit(i32),
    Next(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Seq,
    And,
    Or,
}

const COMMANDS: &[&str] =
    &["echo", "cat", "hostname", "env", "printenv", "true", "false", "sleep", "sh", "bash", "dash"];
const KNOWN_PATHS: &[&str] = &["/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin"];

fn not_found(program: &str) -> StartFailed {
    // runc 1.2 (what containerd 2 runs): the error containerd returns for an exec whose
    // executable is not on PATH (libcontainer/standard_init_linux.go, exec.LookPath).
    StartFailed(format!(
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH"
    ))
}

fn spec_of<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
}

/// Splits a script line into commands (words after quoting and `$VAR` expansion) and the
/// operator after each. `$?` is left as a marker for the caller to fill in.
fn split_script(line: &str, env: &BTreeMap<String, String>) -> Vec<(Vec<String>, Option<Op>)> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    let expand = |chars: &mut std::iter::Peekable<std::str::Chars>, word: &mut String| {
        if chars.peek() == Some(&'?') {
            chars.next();
            word.push_str("\u{0}?");
            return;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.peek() == Some(&'}') {
            chars.next();
        }
        if name.is_empty() {
            word.push('$');
        } else {
            word.push_str(env.get(&name).map(String::as_str).unwrap_or(""));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => flush(&mut words, &mut word, &mut in_word),
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        '$' => expand(&mut chars, &mut word),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            '$' => {
                in_word = true;
                expand(&mut chars, &mut word);
            }
            ';' | '\n' => {
                flush(&mut words, &mut word, &mut in_word);
                out.push((std::mem::take(&mut words), Some(Op::Seq)));
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                flush(&mut words, &mut word, &mut in_word);
                out.push((std::mem::take(&mut words), Some(Op::And)));
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                flush(&mut words, &mut word, &mut in_word);
                out.push((std::mem::take(&mut words), Some(Op::Or)));
            }
            '#' if !in_word => break,
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut words, &mut word, &mut in_word);
    out.push((words, None));
    out
}

/// Whether something listens on `port` in the pod: a port one of its containers declares.
pub fn listens_on(pod: &Value, port: u16) -> bool {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| c.get("ports").and_then(Value::as_array).cloned().unwrap_or_default())
        .any(|p| p["containerPort"].as_u64() == Some(u64::from(port)))
}

/// What answers a connection to a declared port: an HTTP request gets nginx's default page
/// (`Connection: close`, then the server closes), anything else is echoed back until the client
/// closes its side. `input` ends when the client half-closes; dropping `output` closes ours.
pub async fn serve_port(mut input: mpsc::Receiver<Vec<u8>>, output: mpsc::Sender<Vec<u8>>) {
    let Some(mut first) = input.recv().await else { return };
    if is_http_request(&first) {
        while !first.windows(4).any(|w| w == b"\r\n\r\n") {
            match input.recv().await {
                Some(more) => first.extend(more),
                None => break,
            }
        }
        let _ = output.send(http_response(first.starts_with(b"HEAD "))).await;
        return;
    }
    if output.send(first).await.is_err() {
        return;
    }
    while let Some(chunk) = input.recv().await {
        if output.send(chunk).await.is_err() {
            return;
        }
    }
}

fn is_http_request(first: &[u8]) -> bool {
    ["GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH "]
        .iter()
        .any(|m| first.starts_with(m.as_bytes()))
}

/// nginx's default page, as a complete HTTP/1.1 response.
fn http_response(head_only: bool) -> Vec<u8> {
    let body = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n";
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.27.5\r\nDate: {date}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\nAccept-Ranges: bytes\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(argv: &[&str], stdin: &[&str]) -> (Result<i32, StartFailed>, String, String) {
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let (err_tx, mut err_rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::channel(64);
        for s in stdin {
            in_tx.send(s.as_bytes().to_vec()).await.unwrap();
        }
        drop(in_tx);
        let mut io = Stdio { stdin: Some(in_rx), stdout: out_tx, stderr: err_tx, tty: false };
        let pod = serde_json::json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "GREETING", "value": "hi"}]}]}});
        let c = Container::of(&pod, "c");
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let status = c.exec(&argv, &mut io).await;
        drop(io);
        let mut out = Vec::new();
        while let Some(b) = out_rx.recv().await {
            out.extend(b);
        }
        let mut err = Vec::new();
        while let Some(b) = err_rx.recv().await {
            err.extend(b);
        }
        (status, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[tokio::test]
    async fn commands_behave_as_in_a_debian_image() {
        assert_eq!(
            run(&["echo", "hi", "there"], &[]).await,
            (Ok(0), "hi there\n".into(), "".into())
        );
        assert_eq!(run(&["cat"], &["a", "b\n"]).await, (Ok(0), "ab\n".into(), "".into()));
        assert_eq!(run(&["hostname"], &[]).await.1, "web\n");
        assert_eq!(run(&["false"], &[]).await.0, Ok(1));
        assert_eq!(run(&["/bin/sh", "-c", "exit 3"], &[]).await.0, Ok(3));
        assert_eq!(
            run(&["sh", "-c", "echo \"$GREETING\" $HOSTNAME; false || echo no && echo yes"], &[])
                .await
                .1,
            "hi web\nno\nyes\n"
        );
        let (status, _, err) = run(&["sh", "-c", "nope"], &[]).await;
        assert_eq!((status, err.as_str()), (Ok(127), "sh: 1: nope: not found\n"));
        assert_eq!(run(&["sh"], &["echo one\n", "exit 4\n", "echo never\n"]).await.1, "one\n");
        let missing = run(&["foo"], &[]).await.0.unwrap_err().0;
        assert!(
            missing.ends_with("exec: \"foo\": executable file not found in $PATH"),
            "{missing}"
        );
    }
}
