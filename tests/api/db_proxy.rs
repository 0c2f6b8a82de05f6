//! A TCP proxy in front of the test PostgreSQL, to fault one instance's database connections:
//! `cut` drops every connection and refuses new ones (a database restart, a network cut);
//! `freeze_listeners` silences the NOTIFY listener's connections without closing them (a NAT or
//! firewall that dropped the flow, a frozen proxy): nothing is forwarded either way, no FIN, no
//! RST, and this host's kernel still acknowledges what the client sends.
//!
//! The listener's connection is told apart by its startup packet, which carries
//! `application_name=wxauth-listener`. To read it, the proxy answers a TLS request with "no"
//! itself, so the client (`sslmode=prefer` or `disable`) goes on in plain text.
//!
//! It runs on its own thread and runtime: a test's thread may block while a binary starts.
//! Included by `tests/fault.rs` too, which uses other parts of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PG_ADDR: &str = "127.0.0.1:5432";
/// What the listener's startup packet says about itself.
const LISTENER_MARK: &[u8] = b"application_name\0wxauth-listener\0";
/// Request codes of the startup phase (PostgreSQL protocol, "Message Formats").
const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;

struct Proxied {
    /// Set once the startup packet is read.
    listener: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct Flags {
    /// Refuse new connections.
    down: AtomicBool,
    /// Freeze new listener connections as soon as they arrive.
    freeze_new_listeners: AtomicBool,
}

pub struct DbProxy {
    pub port: u16,
    flags: Arc<Flags>,
    connections: Arc<Mutex<Vec<Proxied>>>,
}

impl DbProxy {
    pub fn start() -> DbProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let flags = Arc::new(Flags::default());
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (flags_in, conns) = (flags.clone(), connections.clone());
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                while let Ok((client, _)) = listener.accept().await {
                    if flags_in.down.load(Ordering::SeqCst) {
                        continue; // dropped at once: the connection is refused
                    }
                    let frozen = Arc::new(AtomicBool::new(false));
                    let is_listener = Arc::new(AtomicBool::new(false));
                    let task = actix_rt::spawn(serve(
                        client,
                        frozen.clone(),
                        is_listener.clone(),
                        flags_in.clone(),
                    ));
                    lock(&conns).push(Proxied {
                        listener: is_listener,
                        frozen,
                        task: task.abort_handle(),
                    });
                }
            });
        });
        DbProxy {
            port,
            flags,
            connections,
        }
    }

    /// `url` (a database on the test server) through this proxy.
    pub fn url_for(&self, url: &str) -> String {
        url.replace(PG_ADDR, &format!("127.0.0.1:{}", self.port))
    }

    /// Drops every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.flags.down.store(true, Ordering::SeqCst);
        for c in lock(&self.connections).drain(..) {
            c.task.abort();
        }
    }

    pub fn restore(&self) {
        self.flags.down.store(false, Ordering::SeqCst);
    }

    /// Freezes the listener connections open now; answers how many. New ones pass.
    pub fn freeze_listeners(&self) -> usize {
        let conns = lock(&self.connections);
        let mut n = 0;
        for c in conns.iter().filter(|c| c.listener.load(Ordering::SeqCst)) {
            if !c.frozen.swap(true, Ordering::SeqCst) {
                n += 1;
            }
        }
        n
    }

    /// While on, every new listener connection is frozen from its first byte too.
    pub fn freeze_new_listeners(&self, on: bool) {
        self.flags.freeze_new_listeners.store(on, Ordering::SeqCst);
    }

    /// How many listener connections the proxy has seen (frozen or not, open or not).
    pub fn listener_connections(&self) -> usize {
        lock(&self.connections)
            .iter()
            .filter(|c| c.listener.load(Ordering::SeqCst))
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One client connection: the startup phase by hand, then both directions until either side
/// closes, unless frozen.
async fn serve(
    mut client: TcpStream,
    frozen: Arc<AtomicBool>,
    is_listener: Arc<AtomicBool>,
    flags: Arc<Flags>,
) {
    let Ok(startup) = read_startup(&mut client).await else {
        return;
    };
    let listener = startup
        .windows(LISTENER_MARK.len())
        .any(|w| w == LISTENER_MARK);
    if listener && flags.freeze_new_listeners.load(Ordering::SeqCst) {
        frozen.store(true, Ordering::SeqCst);
    }
    is_listener.store(listener, Ordering::SeqCst);
    if frozen.load(Ordering::SeqCst) {
        // Never reaches the server; the client waits for an answer that never comes.
        hold(client).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(PG_ADDR).await else {
        return;
    };
    if server.write_all(&startup).await.is_err() {
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, frozen.clone()),
        pump(server_read, client_write, frozen),
    );
}

/// Keeps a socket open and silent until the task is aborted.
async fn hold<T>(_socket: T) {
    std::future::pending::<()>().await;
}

/// The startup packet, after declining any TLS or GSS encryption request.
async fn read_startup(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    loop {
        let mut len = [0u8; 4];
        client.read_exact(&mut len).await?;
        let n = u32::from_be_bytes(len) as usize;
        if !(8..=10_000).contains(&n) {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let mut rest = vec![0u8; n - 4];
        client.read_exact(&mut rest).await?;
        let code = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        let mut packet = len.to_vec();
        packet.extend_from_slice(&rest);
        return Ok(packet);
    }
}

/// Copies one direction. Once the connection is frozen nothing more is written and nothing is
/// closed: the bytes read are dropped and the sockets stay open.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            hold((from, to)).await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if frozen.load(Ordering::SeqCst) {
        hold((from, to)).await;
        return;
    }
    let _ = to.shutdown().await;
}
