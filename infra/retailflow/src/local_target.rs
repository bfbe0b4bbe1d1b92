//! Where `trace`, `reconcile` and `replay` find the local app when no URL
//! is given: the `serve` running on the data directory (it holds the
//! file), or else the data directory opened in this process and served on
//! loopback while the command runs. Either way the command speaks the same
//! `/local/...` routes, so there is one local code path.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use retailflow::data_dir::{serve_url, DataDir, DataDirError};
use retailflow::local_app::LocalApp;

/// A local app to ask, for as long as this lives.
pub struct LocalTarget {
    pub url: String,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for LocalTarget {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// The local app of `data_dir` (see the module docs).
pub async fn local_target(data_dir: &Path) -> anyhow::Result<LocalTarget> {
    let data = match DataDir::open_existing(data_dir) {
        Ok(d) => d,
        Err(DataDirError::InUse(dir)) => {
            let busy = || {
                format!(
                    "{} is in use by another retailflow process (a `run`, or a `serve` still starting) that does not say where it serves; try again, or pass --local <its URL>",
                    dir.display()
                )
            };
            let url = serve_url(&dir).with_context(busy)?;
            if !serves(&url, &dir).await {
                bail!("{}", busy());
            }
            return Ok(LocalTarget { url, server: None });
        }
        Err(e @ DataDirError::Empty(_)) => bail!(
            "{e}; or say where: --local <URL of a running `retailflow serve`>, or a deployed stack (--stack <name>)"
        ),
        Err(e) => return Err(e.into()),
    };
    let app = Arc::new(LocalApp::open(Default::default(), Some(Arc::new(data))).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::serve::router(app)).await {
            tracing::error!(error = %e, "local app stopped");
        }
    });
    Ok(LocalTarget {
        url,
        server: Some(server),
    })
}

/// Whether the app at `url` keeps its state in `dir` (a `serve.url` left
/// by a killed process may name a port someone else has now).
pub(crate) async fn serves(url: &str, dir: &Path) -> bool {
    let want = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let endpoint = format!("{}/local/data-dir", url.trim_end_matches('/'));
    let Ok(resp) = reqwest::get(&endpoint).await else {
        return false;
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    v["data_dir"].as_str().map(std::path::PathBuf::from) == Some(want)
}

/// `retailflow trace KEY` on a local app: `Ok(false)` when something of
/// the order is not done (a step open, a dead letter, a quarantined delivery).
pub async fn trace(url: &str, key: &str, json: bool) -> anyhow::Result<bool> {
    let endpoint = format!(
        "{}/local/trace/{}",
        url.trim_end_matches('/'),
        percent_encode(key)
    );
    let resp = reqwest::get(&endpoint)
        .await
        .with_context(|| unreachable(url))?;
    let status = resp.status();
    let body = resp.text().await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let guesses: Vec<&str> = v["did_you_mean"]
            .as_array()
            .map(|a| a.iter().filter_map(|g| g.as_str()).collect())
            .unwrap_or_default();
        let hint = match guesses.as_slice() {
            [] => {
                "order keys look like shopify:<shop>:order:<id>, adobe_commerce:<store>:order:<id>"
                    .to_string()
            }
            some => format!("did you mean {}?", some.join(" or ")),
        };
        bail!("the local app has no saga for {key}; {hint}");
    }
    if !status.is_success() {
        bail!("the local app refused: {}", refusal_text(&body));
    }
    let t: retailflow_core::trace::OrderTrace = serde_json::from_str(&body)
        .with_context(|| format!("the local app answered what is not a trace: {body}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        print!("{}", retailflow_core::trace::render(&t));
    }
    Ok(t.complete)
}

/// What to say when the local app does not answer: a running `serve` the
/// person named, or the one this command started, stopped.
pub(crate) fn unreachable(url: &str) -> String {
    format!("cannot reach retailflow serve at {url}: is it running?")
}

/// The `error` of a refusal's JSON body, or the body as it is.
pub(crate) fn refusal_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

/// A key as one path segment (order keys hold `:` and may hold `/`).
pub(crate) fn percent_encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
