//! Finding an MCP server's command when `spec.command` is not given.

use super::credentials::PullCredentials;
use futures::future::BoxFuture;
use std::collections::HashMap;

/// An image's ENTRYPOINT and CMD, as its configuration declares them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageCommand {
    /// What a container runtime would run: the entrypoint, then CMD unless `args` are given
    /// (they replace CMD, as a Pod's `args` do). The caller appends the args themselves.
    pub fn command_for(&self, args_given: bool) -> Vec<String> {
        let mut out = self.entrypoint.clone();
        if !args_given {
            out.extend(self.cmd.iter().cloned());
        }
        out
    }
}

/// Looks up the command (entrypoint + cmd) of an image.
pub trait CommandResolver: Send + Sync {
    /// The image's command, or why it is not known (shown to the user in a condition).
    /// `pull` holds the logins of the pod's imagePullSecrets, for private registries.
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        pull: &'a PullCredentials,
    ) -> BoxFuture<'a, Result<ImageCommand, String>>;
}

/// Commands configured by the operator's administrator (`--image-command IMAGE=COMMAND`), for
/// air-gapped clusters and well-known images. Images are matched with and without a tag.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    commands: HashMap<String, Vec<String>>,
}

impl StaticResolver {
    pub fn new(commands: HashMap<String, Vec<String>>) -> Self {
        StaticResolver { commands }
    }

    /// Parses `IMAGE=COMMAND ARG...` (whitespace-separated command words).
    pub fn parse_entry(s: &str) -> Result<(String, Vec<String>), String> {
        let (image, command) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected IMAGE=COMMAND"))?;
        let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        if image.trim().is_empty() || words.is_empty() {
            return Err(format!("{s:?}: expected IMAGE=COMMAND"));
        }
        Ok((image.trim().to_string(), words))
    }

    fn lookup(&self, image: &str) -> Option<&Vec<String>> {
        self.commands
            .get(image)
            .or_else(|| self.commands.get(untagged(image)))
    }
}

/// `repo:tag` → `repo` (a registry port is not a tag).
fn untagged(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => &image[..slash + i],
        None => image,
    }
}

impl CommandResolver for StaticResolver {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        _pull: &'a PullCredentials,
    ) -> BoxFuture<'a, Result<ImageCommand, String>> {
        let found = self
            .lookup(image)
            .map(|c| ImageCommand {
                entrypoint: c.clone(),
                cmd: Vec::new(),
            })
            .ok_or_else(|| format!("the command of image {image} is not known"));
        Box::pin(async move { found })
    }
}

/// Tries resolvers in order; the last error is reported.
pub struct Chain(pub Vec<Box<dyn CommandResolver>>);

impl CommandResolver for Chain {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        pull: &'a PullCredentials,
    ) -> BoxFuture<'a, Result<ImageCommand, String>> {
        Box::pin(async move {
            let mut last = format!("no way to read the command of {image} is configured");
            for r in &self.0 {
                match r.resolve(image, pull).await {
                    Ok(c) => return Ok(c),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_entries_match_with_and_without_tag() {
        let (image, cmd) =
            StaticResolver::parse_entry("docker.io/mcp/fetch=mcp-server-fetch --x").unwrap();
        let r = StaticResolver::new(HashMap::from([(image, cmd)]));
        assert_eq!(
            r.lookup("docker.io/mcp/fetch:1.0").unwrap(),
            &["mcp-server-fetch", "--x"]
        );
        assert!(r.lookup("docker.io/mcp/other").is_none());
        assert_eq!(untagged("localhost:5000/a/b:v1"), "localhost:5000/a/b");
        assert!(StaticResolver::parse_entry("nocommand=").is_err());
    }
}
