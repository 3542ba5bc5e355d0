//! A broker's URL, read into what amqprs opens a connection with.
//!
//! Not amqprs's own reading: it leaves the vhost and credentials
//! percent-encoded (`%2f` would name a vhost of that name) and panics on a
//! query parameter without a value.

use weft_core::Error;

/// A broker URL's parts: `amqp://user:password@host:port/vhost?heartbeat=N`.
#[derive(PartialEq)]
pub(super) struct Address {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    pub heartbeat: Option<u16>,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Address")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"…")
            .field("vhost", &self.vhost)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

impl Address {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let redacted = weft_core::ports::redacted_url(text);
        let invalid = |why: &str| Error::Invalid(format!("rabbitmq URL {redacted}: {why}"));
        let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "amqp" => {}
            "amqps" => return Err(invalid("TLS (amqps) is not built into this weft")),
            other => return Err(invalid(&format!("unknown scheme `{other}`; use amqp://"))),
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("a part is not UTF-8 once decoded"))
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(invalid("it names no host")),
        };
        let user = match url.username() {
            "" => "guest".to_string(),
            u => decode(u)?,
        };
        let password = match url.password() {
            Some(p) => decode(p)?,
            None => "guest".to_string(),
        };
        // The path is the vhost, percent-encoded (`%2f` is `/`); none is `/`.
        let vhost = match url.path().strip_prefix('/').unwrap_or_default() {
            "" => "/".to_string(),
            v => decode(v)?,
        };
        let mut heartbeat = None;
        for (key, value) in url.query_pairs() {
            if key == "heartbeat" {
                heartbeat = Some(
                    value
                        .parse()
                        .map_err(|_| invalid("heartbeat is not a number of seconds"))?,
                );
            }
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(5672),
            user,
            password,
            vhost,
            heartbeat,
        })
    }
}
