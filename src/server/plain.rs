//! Plain-HTTP connections (`http` listeners): HTTP/1.1 under the same
//! header, idle and drain limits as https; requests go to
//! [`crate::http::plain`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::idle;
use crate::http;

/// What a connection holds while it (or a tunnel made from it) is open.
type Slot = Arc<dyn std::any::Any + Send + Sync>;

/// A plain-HTTP connection: HTTP/1.1 under the same header, idle and drain
/// limits as https.
pub(super) async fn serve(
    sock: TcpStream,
    client: SocketAddr,
    listener: Arc<http::plain::HttpListener>,
    mut drain: watch::Receiver<bool>,
    slot: Slot,
) {
    let conn = Arc::new(http::plain::PlainConn {
        listener: listener.clone(),
        client,
        forwarded_for: http::headers::forwarded_for(client.ip()),
        slot,
        drain: drain.clone(),
        stats: Default::default(),
    });
    let activity = idle::Activity::new();
    let io = hyper_util::rt::TokioIo::new(idle::Tracked::new(sock, activity.clone()));
    let svc = idle::service(&activity, conn, http::plain::PlainConn::handle);
    let served = listener.server.serve_connection(io, svc).with_upgrades();
    tokio::pin!(served);
    let limits = &listener.limits;
    let mut closing = *drain.borrow();
    if closing {
        served.as_mut().graceful_shutdown();
    }
    let mut deadline: Option<tokio::time::Instant> = None;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        if closing && deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + limits.drain_timeout);
        }
        let wake = match deadline {
            Some(d) => d,
            None => {
                tokio::time::Instant::now()
                    + limits.idle_timeout.saturating_sub(activity.idle_for())
            }
        };
        timer.as_mut().reset(wake);
        tokio::select! {
            _ = served.as_mut() => break,
            _ = timer.as_mut() => {
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
                if !closing && activity.idle_for() >= limits.idle_timeout {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
            r = drain.changed(), if !closing => {
                if r.is_ok() {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
