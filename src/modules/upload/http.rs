//! The upload routes the HTTP listener merges: `PUT` into an open slot and `GET`/`HEAD` of a
//! stored file at `/upload/<user key>/<slot id>/<filename>?expires=..&sig=..`, both streamed
//! (a file is never held whole in memory), with CORS headers and `OPTIONS` preflight so web
//! clients may use them.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::sign::Grant;
use super::slots::{self, Claim, Slot, Uploads};
use super::store::{self, Meta};
use crate::server::Server;

/// Write buffer of a PUT and read chunk of a GET: large enough that disk calls stay few.
const CHUNK: usize = 512 * 1024;

#[derive(Clone)]
struct Ctx {
    server: Arc<Server>,
    uploads: Arc<Uploads>,
}

/// The upload routes (none when the service is off), and the sweep of expired files, which
/// ends with `shutdown`.
pub fn routes(server: &Arc<Server>, listener_url: &str, shutdown: watch::Receiver<bool>) -> Router {
    let Some(uploads) = server.registry.provided::<Uploads>() else {
        return Router::new();
    };
    if !server.config().upload.enabled {
        return Router::new();
    }
    if uploads.set_listener_url(listener_url.to_string()) {
        tokio::spawn(sweep_regularly(server.clone(), uploads.clone(), shutdown));
    }
    Router::new()
        .route(
            "/upload/{user}/{slot}/{filename}",
            get(download).put(upload).options(preflight),
        )
        .layer(axum::middleware::map_response(cors))
        .with_state(Ctx {
            server: server.clone(),
            uploads,
        })
}

async fn sweep_regularly(server: Arc<Server>, uploads: Arc<Uploads>, mut shutdown: watch::Receiver<bool>) {
    // Slots handed out before a restart (and their folders, which the sweep keeps).
    uploads.load(&server).await;
    loop {
        let (interval, directory) = {
            let config = server.config();
            (
                config.upload.cleanup_interval_secs,
                config.upload.directory.clone(),
            )
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(interval)) => {}
        }
        let now = slots::now();
        uploads.forget_expired(now);
        if let Err(e) = server.storage.upload_slots_expire(now as i64).await {
            tracing::warn!(error = %e, "upload: expired slots not deleted from storage");
        }
        match store::sweep(&directory, now, |slot| uploads.is_open(slot)).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "upload: expired files deleted"),
            Err(e) => tracing::warn!(error = %e, "upload: sweeping expired files failed"),
        }
    }
}

/// Every upload response may be read by a page of any origin (the URLs are the secret).
async fn cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Type"),
    );
    res
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, PUT, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type"),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], format!("{why}\n")).into_response()
}

/// `expires` and `sig` from the query string.
fn signed(query: Option<&str>) -> Option<(u64, &str)> {
    let (mut expires, mut sig) = (None, None);
    for pair in query?.split('&') {
        match pair.split_once('=') {
            Some(("expires", v)) => expires = v.parse().ok(),
            Some(("sig", v)) => sig = Some(v),
            _ => {}
        }
    }
    Some((expires?, sig?))
}

async fn download(
    State(ctx): State<Ctx>,
    Path((user, slot, filename)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((expires, sig)) = signed(query.as_deref()) else {
        return refuse(StatusCode::FORBIDDEN, "unsigned URL");
    };
    if !store::is_key(&user) || !store::is_key(&slot) {
        return refuse(StatusCode::NOT_FOUND, "no such file");
    }
    let Ok(key) = ctx.uploads.key(&ctx.server).await else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    let path = format!("{user}/{slot}/{filename}");
    if !(Grant::Get { path: &path, expires }).verify(key, sig) {
        return refuse(StatusCode::FORBIDDEN, "bad signature");
    }
    if expires <= slots::now() {
        return refuse(StatusCode::GONE, "expired");
    }
    let directory = ctx.server.config().upload.directory.clone();
    let dir = store::slot_dir(&directory, &user, &slot);
    let meta = match store::read_meta(&dir).await {
        Some(meta) if meta.filename == filename => meta,
        _ => return refuse(StatusCode::NOT_FOUND, "no such file"),
    };
    let Ok(file) = tokio::fs::File::open(dir.join("data")).await else {
        return refuse(StatusCode::NOT_FOUND, "no such file");
    };
    let Ok(len) = file.metadata().await.map(|m| m.len()) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = BytesMut::with_capacity(CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    });
    let content_type = meta
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut res = Response::new(Body::from_stream(chunks));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // A file served from our origin must never run as a page of it.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    res
}

async fn upload(
    State(ctx): State<Ctx>,
    Path((user, slot_id, filename)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((expires, sig)) = signed(query.as_deref()) else {
        return refuse(StatusCode::FORBIDDEN, "unsigned URL");
    };
    if !store::is_key(&user) || !store::is_key(&slot_id) {
        return refuse(StatusCode::NOT_FOUND, "no such slot");
    }
    let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    else {
        return refuse(StatusCode::LENGTH_REQUIRED, "Content-Length is required");
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Ok(key) = ctx.uploads.key(&ctx.server).await else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    let path = format!("{user}/{slot_id}/{filename}");
    let directory = ctx.server.config().upload.directory.clone();
    let dir = store::slot_dir(&directory, &user, &slot_id);
    // The signature covers the slot's size and type: checked against the open slot's, or
    // (a slot no longer open) against what the request says, so only a holder of a valid
    // URL learns why it cannot be used.
    let open = ctx
        .uploads
        .peek(&slot_id)
        .filter(|s| s.user == user && s.filename == filename);
    let grant = match &open {
        Some(slot) => Grant::Put {
            path: &path,
            expires,
            size: slot.size,
            content_type: slot.content_type.as_deref(),
        },
        None => Grant::Put {
            path: &path,
            expires,
            size: length,
            content_type,
        },
    };
    if !grant.verify(key, sig) {
        return refuse(StatusCode::FORBIDDEN, "bad signature");
    }
    let slot = match ctx.uploads.claim(&slot_id, &user, &filename) {
        Ok(slot) => slot,
        Err(Claim::Expired) => return refuse(StatusCode::GONE, "the slot expired"),
        Err(Claim::InUse) => return refuse(StatusCode::CONFLICT, "an upload to this slot is under way"),
        Err(Claim::Unknown) if expires <= slots::now() => {
            return refuse(StatusCode::GONE, "the slot expired");
        }
        Err(Claim::Unknown) if tokio::fs::try_exists(dir.join("data")).await.unwrap_or(false) => {
            return refuse(StatusCode::CONFLICT, "the slot was used already");
        }
        Err(Claim::Unknown) => return refuse(StatusCode::NOT_FOUND, "no such slot"),
    };
    // From here the slot is ours; the guard opens it again (and removes a partial file) if
    // this request fails or the client goes away.
    let mut guard = Claimed {
        uploads: ctx.uploads.clone(),
        id: slot_id.clone(),
        dir: dir.clone(),
        written: false,
        done: false,
    };
    if length != slot.size {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Content-Length differs from the slot's size",
        );
    }
    if let Some(wanted) = &slot.content_type
        && !content_type.is_some_and(|t| t.trim().eq_ignore_ascii_case(wanted))
    {
        return refuse(StatusCode::BAD_REQUEST, "Content-Type differs from the slot's");
    }
    guard.written = true;
    match receive(&dir, &slot, body).await {
        Ok(()) => {}
        Err(Receive::Size) => {
            return refuse(StatusCode::BAD_REQUEST, "the body differs from the slot's size");
        }
        Err(Receive::Body) => return refuse(StatusCode::BAD_REQUEST, "the upload was interrupted"),
        Err(Receive::Disk(e)) => {
            tracing::error!(error = %e, "upload: writing a file failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    guard.done = true;
    ctx.uploads.used_up(&ctx.server, &slot_id).await;
    StatusCode::CREATED.into_response()
}

enum Receive {
    /// More or fewer bytes than the slot's size.
    Size,
    /// The client's body failed (connection lost).
    Body,
    Disk(std::io::Error),
}

/// Streams the body to `data.part` through a buffer, then makes it the stored file.
async fn receive(dir: &FsPath, slot: &Slot, body: Body) -> Result<(), Receive> {
    tokio::fs::create_dir_all(dir).await.map_err(Receive::Disk)?;
    let file = tokio::fs::File::create(dir.join("data.part"))
        .await
        .map_err(Receive::Disk)?;
    let mut out = tokio::io::BufWriter::with_capacity(CHUNK, file);
    let mut written: u64 = 0;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| Receive::Body)?;
        written += chunk.len() as u64;
        if written > slot.size {
            return Err(Receive::Size);
        }
        out.write_all(&chunk).await.map_err(Receive::Disk)?;
    }
    if written != slot.size {
        return Err(Receive::Size);
    }
    out.flush().await.map_err(Receive::Disk)?;
    let meta = Meta {
        expires: slot.file_expires,
        content_type: slot.content_type.clone(),
        filename: slot.filename.clone(),
    };
    store::commit(dir, &meta).await.map_err(Receive::Disk)
}

/// A slot a PUT is using: unless `done`, dropping it opens the slot again and removes what
/// was written.
struct Claimed {
    uploads: Arc<Uploads>,
    id: String,
    dir: PathBuf,
    /// The folder may hold a partial file.
    written: bool,
    done: bool,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.written {
            self.uploads.release(&self.id, false);
            return;
        }
        let dir = std::mem::take(&mut self.dir);
        let uploads = self.uploads.clone();
        let id = std::mem::take(&mut self.id);
        // Removed before the slot opens again, so a retry never meets the leftover.
        tokio::spawn(async move {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            uploads.release(&id, false);
        });
    }
}
