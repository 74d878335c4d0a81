//! A TCP proxy in front of a real server that misbehaves on purpose for a set number of
//! connections: it closes them before answering, or forwards the request and then loses the
//! response. Everything after that is forwarded faithfully.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Read the request, then close without forwarding it.
    DropRequest,
    /// Forward the request and wait for the server's answer, then close without passing the
    /// answer on: the server has the batch, the device does not know it.
    DropResponse,
}

pub struct FaultyProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Vec<Misbehaviour>>>,
    stop: Arc<AtomicBool>,
    /// Connections that were sabotaged.
    pub sabotaged: Arc<AtomicUsize>,
}

impl FaultyProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub fn start(upstream: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let plan: Arc<Mutex<Vec<Misbehaviour>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let sabotaged = Arc::new(AtomicUsize::new(0));
        let (plan2, stop2, sabotaged2) = (plan.clone(), stop.clone(), sabotaged.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let action = {
                            let mut plan = plan2.lock().unwrap();
                            if plan.is_empty() {
                                None
                            } else {
                                Some(plan.remove(0))
                            }
                        };
                        if action.is_some() {
                            sabotaged2.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::spawn(move || handle(client, upstream, action));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FaultyProxy {
            addr,
            plan,
            stop,
            sabotaged,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sabotages the next `count` connections with `what`.
    pub fn misbehave(&self, what: Misbehaviour, count: usize) {
        self.plan
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(what, count));
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one HTTP/1.1 request with a Content-Length body.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn handle(mut client: TcpStream, upstream: SocketAddr, action: Option<Misbehaviour>) {
    // One request per connection keeps the plan simple: ask the server to close after answering.
    let Some(request) = read_request(&mut client) else {
        return;
    };
    if action == Some(Misbehaviour::DropRequest) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let request = force_close(&request);
    if server.write_all(&request).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = server.read_to_end(&mut response);
    if action == Some(Misbehaviour::DropResponse) {
        return;
    }
    let _ = client.write_all(&response);
}

/// Rewrites the request so the server closes the connection after its answer.
fn force_close(request: &[u8]) -> Vec<u8> {
    let end = find(request, b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&request[..end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&request[end + 4..]);
    bytes
}
