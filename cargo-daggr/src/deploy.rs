//! `cargo daggr deploy`: a pipeline target as a Docker Space on the Hugging Face Hub.
//!
//! The target is built here first and asked for its graph, so a target that builds no
//! pipeline is an error before anything is written. Then the Space's files are written to
//! a directory: the project's files (as git would see them: `.gitignore`d files, `target/`,
//! `.git/` and `.daggr/` left out, the lock file kept), a multi-stage `Dockerfile` that
//! builds the target with `--locked` and runs it with the serve handshake (the inspector
//! and the workflow API on `0.0.0.0:7860`, behind the token of the Space secret
//! `DAGGR_SERVE_TOKEN`), and a `README.md` whose front matter makes it a Docker Space.
//!
//! With a Hugging Face write token ([`HfToken::from_env`]) and without `--dry-run`, the
//! Space is created (`POST /api/repos/create`, with a fresh access token as its secret) and
//! the files are committed (`POST /api/spaces/{id}/preupload/main`, then
//! `POST /api/spaces/{id}/commit/main`, NDJSON). The token goes to the configured Hub only
//! (`HF_ENDPOINT`, default `https://huggingface.co`), over https (plain http only to a Hub
//! on this machine), and redirects are not followed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use clap::Args;
use serde_json::{json, Value as Json};

use daggr::hf::hub::{default_hub, subdomain_url};
use daggr::hf::HfToken;
use daggr::reqwest;
use daggr_codegen::ir::{short_type_name, PipelineIr};

use crate::build::{
    ask_graph, build_target, candidate_packages, choose_target, metadata, read_sources, BuildArgs,
};
use crate::error::CliError;
use crate::serve::random_token;

/// The port the Space's app listens on (`app_port` in its README).
pub const APP_PORT: u16 = 7860;
/// The Space secret holding the access token (the serve handshake's token variable).
pub const TOKEN_SECRET: &str = daggr::SERVE_TOKEN_ENV;
/// The first line of the Dockerfile this tool writes: how a directory it wrote before is
/// recognised (and may be written over).
const MARKER: &str = "# Written by `cargo daggr deploy`";

/// `cargo daggr deploy` arguments.
#[derive(Clone, Debug, Args)]
pub struct DeployArgs {
    /// Where to write the Space's files (emptied first if `cargo daggr deploy` wrote it
    /// before; else it must be empty). Default: `daggr-space/NAME` in the target directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The Space: `owner/name`, or `name` in the token owner's namespace. Default: the
    /// target's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Create the Space private.
    #[arg(long)]
    pub private: bool,
    /// Write the Space's files only; create and upload nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Which target to build and how.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// What the Space runs: the built target and the pipeline it serves.
struct Target {
    /// The package it belongs to.
    package: String,
    /// `example` or `bin`.
    kind: &'static str,
    /// Its name.
    name: String,
    /// The pipeline's graph (and named outputs, read from the sources when they say).
    ir: PipelineIr,
}

/// `cargo daggr deploy`.
pub fn deploy(args: &DeployArgs) -> Result<(), CliError> {
    let build = choose_target(&args.build)?;
    let (name, exe) = build_target(&build)?;
    let mut ir = ask_graph(&name, &exe, build.timeout)?;
    if ir.outputs.is_empty() {
        // Named outputs are the `pipeline!`'s: the program does not write them.
        if let Ok(sources) = read_sources(&build) {
            ir.outputs = sources.outputs_of(&ir.graph);
        }
    }
    let meta = metadata(&build)?;
    let kind = if build.example.is_some() {
        "example"
    } else {
        "bin"
    };
    let package = candidate_packages(&meta, &build)?
        .into_iter()
        .find(|p| {
            p.targets.iter().any(|t| {
                t.name == name
                    && if kind == "example" {
                        t.is_example()
                    } else {
                        t.is_bin()
                    }
            })
        })
        .ok_or_else(|| CliError::Target(format!("no package has the {kind} target `{name}`")))?;
    let target = Target {
        package: package.name.to_string(),
        kind,
        name: name.clone(),
        ir,
    };
    let root = meta.workspace_root.clone().into_std_path_buf();
    let (owner, repo) = split_name(args.name.as_deref().unwrap_or(&name))?;

    // What an upload needs is settled before anything is written.
    let upload = match (args.dry_run, HfToken::from_env()) {
        (true, _) => None,
        (false, None) => {
            eprintln!(
                "cargo daggr: no Hugging Face token (HF_TOKEN, or the file `huggingface-cli login` writes): the Space is written, not uploaded"
            );
            None
        }
        (false, Some(token)) => Some(Hub::new(default_hub(), token)?),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("starting an async runtime: {e}")))?;
    let owner = match (&upload, owner) {
        (Some(hub), None) => Some(runtime.block_on(hub.whoami())?),
        (_, owner) => owner,
    };
    let space_id = owner.as_ref().map(|o| format!("{o}/{repo}"));

    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => meta
            .target_directory
            .clone()
            .into_std_path_buf()
            .join("daggr-space")
            .join(&repo),
    };
    prepare_dir(&dir)?;
    let excluded = [
        meta.target_directory.clone().into_std_path_buf(),
        build.target_dir.clone().unwrap_or_default(),
        dir.clone(),
    ];
    let copied = copy_project(&root, &dir, &excluded)?;
    if !root.join("Cargo.lock").is_file() {
        return Err(CliError::Io(format!(
            "{} has no Cargo.lock: the Space builds with the project's lock file (`cargo generate-lockfile` writes one)",
            root.display()
        )));
    }
    for (package, dependency, path) in outside_path_dependencies(&meta, &root) {
        eprintln!(
            "cargo daggr: warning: `{package}` depends on `{dependency}` by a path outside the project ({path}); the Space's build cannot reach it (publish it, or move it into the project)"
        );
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile(&target, &build))
        .map_err(|e| CliError::Io(format!("writing the Dockerfile: {e}")))?;
    std::fs::write(
        dir.join("README.md"),
        readme(&target, &repo, space_id.as_deref()),
    )
    .map_err(|e| CliError::Io(format!("writing README.md: {e}")))?;
    eprintln!(
        "cargo daggr: wrote the Space for `{}` to {} ({copied} project files, a Dockerfile and README.md)",
        target.ir.graph.name,
        dir.display()
    );

    let (Some(hub), Some(space_id)) = (upload, space_id) else {
        return Ok(());
    };
    runtime.block_on(async {
        let secret = random_token();
        let created = hub.create_space(&space_id, args.private, &secret).await?;
        let files = space_files(&dir)?;
        hub.check_upload_modes(&space_id, &files).await?;
        let summary = format!("Deploy {} with cargo daggr", target.ir.graph.name);
        hub.commit(&space_id, &files, &summary).await?;
        let page = format!("{}/spaces/{space_id}", hub.base);
        if created {
            println!("created the Space {page} and uploaded {} files", files.len());
            println!(
                "its access token, kept as the Space secret {TOKEN_SECRET} (send it as the X-Daggr-Token header): {secret}"
            );
        } else {
            println!(
                "updated the Space {page} ({} files); its secrets are as they were (the access token is its secret {TOKEN_SECRET})",
                files.len()
            );
        }
        Ok(())
    })
}

/// `owner/name` or `name`: the owner (if given) and the Space's name, checked as the Hub
/// names repositories.
pub fn split_name(name: &str) -> Result<(Option<String>, String), CliError> {
    let (owner, repo) = match name.split_once('/') {
        Some((owner, repo)) => (Some(owner.to_string()), repo.to_string()),
        None => (None, name.to_string()),
    };
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 96
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !part.starts_with(['-', '.'])
            && !part.ends_with(['-', '.'])
            && !part.contains("--")
            && !part.contains("..")
    };
    if !valid(&repo) || owner.as_deref().is_some_and(|o| !valid(o)) {
        return Err(CliError::Input(format!(
            "`{name}` is not a Space name: write `owner/name` or `name`, each of letters, digits, `-`, `_` and `.` (at most 96, not starting or ending with `-` or `.`)"
        )));
    }
    Ok((owner, repo))
}

/// Empties `dir` when this tool wrote it before (keeping a `.git`), or checks that it is
/// empty; creates it.
fn prepare_dir(dir: &Path) -> Result<(), CliError> {
    let io = |what: &str, e: std::io::Error| CliError::Io(format!("{what} {}: {e}", dir.display()));
    if dir.is_dir() {
        let entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io("reading", e))?
            .flatten()
            .filter(|e| e.file_name() != ".git")
            .collect();
        if !entries.is_empty() {
            let ours = std::fs::read_to_string(dir.join("Dockerfile"))
                .is_ok_and(|d| d.starts_with(MARKER));
            if !ours {
                return Err(CliError::Io(format!(
                    "{} is not empty and was not written by `cargo daggr deploy`; choose another --dir",
                    dir.display()
                )));
            }
            for entry in entries {
                let path = entry.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| CliError::Io(format!("removing {}: {e}", path.display())))?;
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))
}

/// Copies the project's files under `root` into `dir` as git would see them (`.gitignore`
/// honoured, in or out of a repository), leaving out `.git/`, `.daggr/` (the local cache
/// and sheets), the `excluded` directories (build output, `dir` itself) and the root
/// `README.md` (the Space has its own). Returns the number of files copied.
fn copy_project(root: &Path, dir: &Path, excluded: &[PathBuf]) -> Result<usize, CliError> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let excluded: Vec<PathBuf> = excluded
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| canonical(p))
        .collect();
    let root = canonical(root);
    let walk = ignore::WalkBuilder::new(&root)
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .filter_entry(move |entry| {
            let name = entry.file_name();
            if entry.file_type().is_some_and(|t| t.is_dir()) && (name == ".git" || name == ".daggr")
            {
                return false;
            }
            let path = canonical(entry.path());
            !excluded.iter().any(|x| path.starts_with(x))
        })
        .build();
    let mut copied = 0;
    for entry in walk {
        let entry = entry.map_err(|e| CliError::Io(format!("reading the project: {e}")))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(&root)
            .map_err(|e| CliError::Io(format!("{}: {e}", entry.path().display())))?;
        if relative == Path::new("README.md") {
            continue;
        }
        let to = dir.join(relative);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::Io(format!("creating {}: {e}", parent.display())))?;
        }
        std::fs::copy(entry.path(), &to).map_err(|e| {
            CliError::Io(format!(
                "copying {} to {}: {e}",
                entry.path().display(),
                to.display()
            ))
        })?;
        copied += 1;
    }
    Ok(copied)
}

/// The workspace's dependencies on a path outside `root`: (package, dependency, path).
fn outside_path_dependencies(
    meta: &cargo_metadata::Metadata,
    root: &Path,
) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for package in meta.workspace_packages() {
        for dependency in &package.dependencies {
            let Some(path) = &dependency.path else {
                continue;
            };
            let path = std::fs::canonicalize(path.as_std_path())
                .unwrap_or_else(|_| path.clone().into_std_path_buf());
            if !path.starts_with(root) {
                found.push((
                    package.name.to_string(),
                    dependency.name.clone(),
                    path.display().to_string(),
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The Rust image the Space builds with: the toolchain that built the target here
/// (`rust:1.95-bookworm`), or the latest stable one for a pre-release toolchain.
fn rust_image() -> String {
    let version = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let release = version
        .split_whitespace()
        .nth(1)
        .filter(|v| !v.contains('-'))
        .and_then(|v| {
            let mut parts = v.split('.');
            Some(format!("{}.{}", parts.next()?, parts.next()?))
        });
    format!("rust:{}-bookworm", release.as_deref().unwrap_or("1"))
}

/// The Dockerfile: a build stage compiling the target with the project's lock file, and a
/// slim stage running it with the serve handshake.
fn dockerfile(target: &Target, build: &BuildArgs) -> String {
    let Target {
        package,
        kind,
        name,
        ir,
    } = target;
    let mut flags = format!("-p {package} --{kind} {name}");
    if !build.features.is_empty() {
        flags.push_str(&format!(" --features {}", build.features.join(",")));
    }
    if build.all_features {
        flags.push_str(" --all-features");
    }
    if build.no_default_features {
        flags.push_str(" --no-default-features");
    }
    let built = match *kind {
        "example" => format!("/src/target/release/examples/{name}"),
        _ => format!("/src/target/release/{name}"),
    };
    let pipeline = &ir.graph.name;
    let image = rust_image();
    let serve = daggr::SERVE_ENV;
    format!(
        r#"{MARKER}: builds the {kind} `{name}` of package `{package}`
# with the project's lock file, then runs it so that its pipeline `{pipeline}` is served
# (the daggr inspector and the workflow API) on port {APP_PORT} of every interface, behind
# the access token of the Space secret {TOKEN_SECRET}.
FROM {image} AS build
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked {flags} \
 && cp {built} /tmp/pipeline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Spaces run the container as user 1000; the pipeline keeps its cache and sheets in
# .daggr/ of its working directory.
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user
RUN mkdir -p /home/user/app
WORKDIR /home/user/app
COPY --from=build --chown=user /tmp/pipeline /home/user/app/{name}
# The serve handshake: `Graph::build` serves the pipeline instead of returning it. The
# token comes from the Space secret {TOKEN_SECRET}; without it the app does not start.
ENV {serve}=0.0.0.0:{APP_PORT}
EXPOSE {APP_PORT}
CMD ["/home/user/app/{name}"]
"#
    )
}

/// The Space's README: the front matter that makes it a Docker Space, and how to call it.
fn readme(target: &Target, repo: &str, space_id: Option<&str>) -> String {
    let ir = &target.ir;
    let pipeline = &ir.graph.name;
    let host = space_id
        .map(subdomain_url)
        .unwrap_or_else(|| format!("https://OWNER-{}.hf.space", repo.to_ascii_lowercase()));
    let inputs: Vec<String> = ir
        .graph
        .nodes
        .iter()
        .filter(|n| n.kind == daggr::INPUT_KIND)
        .map(|n| {
            let ty = n.outputs.first().map(|p| p.ty.as_str()).unwrap_or("?");
            format!("- `{}` (`{}`)", n.name, short_type_name(ty))
        })
        .collect();
    let outputs: Vec<String> = ir
        .outputs
        .iter()
        .map(|o| format!("- `{}` (`{}`)", o.name, short_type_name(&o.ty)))
        .collect();
    let list = |items: Vec<String>, none: &str| {
        if items.is_empty() {
            none.to_string()
        } else {
            items.join("\n")
        }
    };
    format!(
        r#"---
title: {repo}
emoji: 🧩
colorFrom: indigo
colorTo: gray
sdk: docker
app_port: {APP_PORT}
pinned: false
---

# {pipeline}

The daggr pipeline `{pipeline}` (the {kind} `{name}` of `{package}`), built from source by
the Dockerfile and served with its inspector and its workflow API.

## Access token

Every request needs the token kept in the Space secret `{TOKEN_SECRET}` (Settings →
Variables and secrets): send it as the `X-Daggr-Token` header, or open the inspector at
`{host}/?token=…`. Without the secret the app does not start.

## Calling the pipeline

```sh
curl -X POST {host}/api/call \
  -H "X-Daggr-Token: $TOKEN" -H 'Content-Type: application/json' \
  -d '{{"inputs": {{}}}}'
```

An input left out keeps its default. The inputs:

{inputs}

The outputs:

{outputs}

`GET {host}/api/openapi.json` describes them all (OpenAPI 3.1).
"#,
        kind = target.kind,
        name = target.name,
        package = target.package,
        inputs = list(inputs, "(none)"),
        outputs = list(
            outputs,
            "every output no node reads (see the OpenAPI document)"
        ),
    )
}

/// The files of the Space directory, as (path in the repository, bytes), sorted.
fn space_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let read = std::fs::read_dir(&at)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", at.display())))?;
        for entry in read.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))?;
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let name: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((name.join("/"), bytes));
        }
    }
    files.sort();
    Ok(files)
}

/// The Hub, as `cargo daggr deploy` talks to it: every request carries the token, goes to
/// `base` only, and is not redirected.
struct Hub {
    base: String,
    token: HfToken,
    client: reqwest::Client,
}

/// Whether the Hub at `base` may be sent the token: over https, or over plain http to this
/// machine (a test's or a proxy's).
fn token_may_go_to(base: &str) -> Result<(), CliError> {
    let url = reqwest::Url::parse(base).map_err(|e| {
        CliError::Hub(format!(
            "the Hub URL `{base}` (HF_ENDPOINT) is not a URL: {e}"
        ))
    })?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(CliError::Hub(format!(
            "the Hub URL `{base}` (HF_ENDPOINT) is not https: the token would cross the network in clear (plain http is only for a Hub on this machine)"
        ))),
    }
}

impl Hub {
    fn new(base: String, token: HfToken) -> Result<Hub, CliError> {
        token_may_go_to(&base)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("cargo-daggr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Hub(format!("starting the HTTP client: {e}")))?;
        Ok(Hub {
            base: base.trim_end_matches('/').to_string(),
            token,
            client,
        })
    }

    /// Sends a request to `path` on the Hub: the status and the body.
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String), CliError> {
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| {
                CliError::Hub(format!(
                    "{what}: cannot reach the Hub at {}: {e}",
                    self.base
                ))
            })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if (300..400).contains(&status) {
            return Err(CliError::Hub(format!(
                "{what}: the Hub answered {status} (a redirect, not followed: the token goes to {} only)",
                self.base
            )));
        }
        Ok((status, body))
    }

    fn refused(what: &str, status: u16, body: &str) -> CliError {
        let message = serde_json::from_str::<Json>(body)
            .ok()
            .and_then(|j| j["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(300).collect());
        let hint = match status {
            401 | 403 => " (is the token a write token of this account or organization?)",
            _ => "",
        };
        CliError::Hub(format!(
            "{what}: the Hub answered {status}: {message}{hint}"
        ))
    }

    /// The token's account name (`GET /api/whoami-v2`).
    async fn whoami(&self) -> Result<String, CliError> {
        let what = "asking the Hub whose token this is";
        let (status, body) = self
            .send(
                what,
                self.client.get(format!("{}/api/whoami-v2", self.base)),
            )
            .await?;
        if status != 200 {
            return Err(Self::refused(what, status, &body));
        }
        serde_json::from_str::<Json>(&body)
            .ok()
            .and_then(|j| j["name"].as_str().map(str::to_string))
            .ok_or_else(|| CliError::Hub(format!("{what}: the answer names no account: {body}")))
    }

    /// Creates the Docker Space with `secret` as its access token; `false` when it exists
    /// (then nothing about it changes).
    async fn create_space(
        &self,
        space_id: &str,
        private: bool,
        secret: &str,
    ) -> Result<bool, CliError> {
        let (owner, name) = space_id.split_once('/').unwrap_or(("", space_id));
        let what = format!("creating the Space {space_id}");
        let body = json!({
            "type": "space",
            "name": name,
            "organization": owner,
            "private": private,
            "sdk": "docker",
            "secrets": [{
                "key": TOKEN_SECRET,
                "value": secret,
                "description": "The access token of the daggr inspector and workflow API",
            }],
        });
        let (status, text) = self
            .send(
                &what,
                self.client
                    .post(format!("{}/api/repos/create", self.base))
                    .json(&body),
            )
            .await?;
        match status {
            200 | 201 => Ok(true),
            409 => Ok(false),
            _ => Err(Self::refused(&what, status, &text)),
        }
    }

    /// Asks the Hub how it takes each file; only regular (inline) uploads are made here,
    /// so a file it wants in LFS is an error naming it.
    async fn check_upload_modes(
        &self,
        space_id: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), CliError> {
        let what = format!("preparing the upload to {space_id}");
        let engine = base64::engine::general_purpose::STANDARD;
        let mut lfs = Vec::new();
        for chunk in files.chunks(256) {
            let listed: Vec<Json> = chunk
                .iter()
                .map(|(path, bytes)| {
                    json!({
                        "path": path,
                        "sample": engine.encode(&bytes[..bytes.len().min(512)]),
                        "size": bytes.len(),
                    })
                })
                .collect();
            let (status, text) = self
                .send(
                    &what,
                    self.client
                        .post(format!(
                            "{}/api/spaces/{space_id}/preupload/main",
                            self.base
                        ))
                        .json(&json!({ "files": listed })),
                )
                .await?;
            if status != 200 {
                return Err(Self::refused(&what, status, &text));
            }
            let answer: Json = serde_json::from_str(&text)
                .map_err(|e| CliError::Hub(format!("{what}: the Hub's answer is not JSON: {e}")))?;
            for file in answer["files"].as_array().into_iter().flatten() {
                let mode = file["uploadMode"].as_str().unwrap_or("regular");
                if mode != "regular" && file["shouldIgnore"] != json!(true) {
                    lfs.push(file["path"].as_str().unwrap_or("?").to_string());
                }
            }
        }
        if !lfs.is_empty() {
            return Err(CliError::Hub(format!(
                "{what}: the Hub takes these files only through LFS, which cargo daggr deploy does not upload: {}; leave them out of the project (.gitignore) or push the Space with git",
                lfs.join(", ")
            )));
        }
        Ok(())
    }

    /// Commits `files` to the Space's `main` in one commit.
    async fn commit(
        &self,
        space_id: &str,
        files: &[(String, Vec<u8>)],
        summary: &str,
    ) -> Result<(), CliError> {
        let what = format!("uploading the Space's files to {space_id}");
        let engine = base64::engine::general_purpose::STANDARD;
        let mut body = json!({
            "key": "header",
            "value": { "summary": summary, "description": "" },
        })
        .to_string();
        body.push('\n');
        for (path, bytes) in files {
            let line = json!({
                "key": "file",
                "value": { "path": path, "content": engine.encode(bytes), "encoding": "base64" },
            });
            body.push_str(&line.to_string());
            body.push('\n');
        }
        let (status, text) = self
            .send(
                &what,
                self.client
                    .post(format!("{}/api/spaces/{space_id}/commit/main", self.base))
                    .header("content-type", "application/x-ndjson")
                    .body(body),
            )
            .await?;
        if status != 200 && status != 201 {
            return Err(Self::refused(&what, status, &text));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_names_are_checked() {
        assert_eq!(split_name("demo").unwrap(), (None, "demo".into()));
        assert_eq!(
            split_name("me/demo-1.x").unwrap(),
            (Some("me".into()), "demo-1.x".into())
        );
        for bad in ["", "me/", "/x", "a/b/c", "-x", "x.", "a b", "a--b"] {
            assert!(split_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_goes_over_https_or_to_this_machine() {
        for ok in [
            "https://huggingface.co",
            "http://127.0.0.1:9000",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(token_may_go_to(ok).is_ok(), "{ok}");
        }
        for refused in ["http://hub.example", "http://10.0.0.1", "ftp://x", "nope"] {
            assert!(token_may_go_to(refused).is_err(), "{refused}");
        }
    }
}
