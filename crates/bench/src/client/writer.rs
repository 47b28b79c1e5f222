//! One connection's writing side: natter frames encoded with natter-proto into reused
//! buffers, RESP and IRC by hand.

use super::*;

/// Writing side of a session.
pub struct Writer {
    pub(super) kind: Kind,
    pub(super) wr: WriteSide,
    /// Frames waiting for [`Writer::send`]; reused, so sending does not allocate.
    pub(super) out: Vec<u8>,
    /// Strings lent to the [`ClientFrame`]s being encoded and taken back afterwards, so
    /// that building a natter frame reuses their capacity instead of allocating.
    pub(super) strings: [String; 2],
    /// The subscribed connection's write half while `wr` publishes (Redis); kept open
    /// because dropping a TCP write half shuts the connection down.
    pub(super) sub: Option<WriteSide>,
}

/// `buf` emptied and refilled with `s`, keeping its capacity.
fn refill(buf: &mut String, s: &str) -> String {
    let mut out = std::mem::take(buf);
    out.clear();
    out.push_str(s);
    out
}

impl Writer {
    pub(super) async fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.wr.write_all(bytes).await?;
        Ok(())
    }

    /// Encodes a natter frame that owns no strings (or whose strings are not reused)
    /// and writes it at once.
    async fn natter(&mut self, frame: &ClientFrame) -> Result<()> {
        self.out.clear();
        natter_proto::encode_into(frame, &mut self.out);
        self.send().await
    }

    /// Sends natter's `auth`, asking to create the account first when `register`.
    pub(super) async fn auth(&mut self, name: &str, register: bool) -> Result<()> {
        self.natter(&ClientFrame::Auth {
            id: None,
            user: name.to_string(),
            password: PASSWORD.to_string(),
            register,
        })
        .await
    }

    /// Appends natter's `public` frame to `out`, built from the reused strings.
    fn push_natter_public(&mut self, room: &str, text: &str, id: Option<u64>) {
        let [r, t] = &mut self.strings;
        let frame = ClientFrame::Public {
            id: id.map(FrameId::Num),
            room: Some(refill(r, room)),
            text: refill(t, text),
            client_id: None,
        };
        natter_proto::encode_into(&frame, &mut self.out);
        if let ClientFrame::Public {
            room: Some(room),
            text,
            ..
        } = frame
        {
            self.strings = [room, text];
        }
    }

    /// Appends natter's `private` frame to `out`, built from the reused strings.
    fn push_natter_private(&mut self, to: &str, text: &str) {
        let [r, t] = &mut self.strings;
        let frame = ClientFrame::Private {
            id: None,
            to: refill(r, to),
            text: refill(t, text),
            client_id: None,
        };
        natter_proto::encode_into(&frame, &mut self.out);
        if let ClientFrame::Private { to, text, .. } = frame {
            self.strings = [to, text];
        }
    }

    /// Sends `text` to the room/channel `room`.
    pub async fn public(&mut self, room: &str, text: &str) -> Result<()> {
        self.out.clear();
        self.push_public(room, text);
        self.send().await
    }

    /// Queues a message to `room` for the next [`Writer::send`], so that several go out
    /// in one write.
    pub fn push_public(&mut self, room: &str, text: &str) {
        match self.kind {
            Kind::Natter => self.push_natter_public(room, text, None),
            Kind::Redis => resp(
                &[b"PUBLISH", room.as_bytes(), text.as_bytes()],
                &mut self.out,
            ),
            Kind::Irc | Kind::NatterIrc => {
                self.out.extend_from_slice(b"PRIVMSG #");
                self.out.extend_from_slice(room.as_bytes());
                self.out.extend_from_slice(b" :");
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Queues a natter `public` message with request id `id` for the next
    /// [`Writer::send`]: the server answers `ok` (an [`Event::Ack`]) once it is stored.
    /// natter only.
    pub fn push_public_acked(&mut self, room: &str, text: &str, id: u64) -> Result<()> {
        if self.kind != Kind::Natter {
            bail!("acknowledged messages are natter's (`ok` frames)");
        }
        self.push_natter_public(room, text, Some(id));
        Ok(())
    }

    /// Writes everything queued with [`Writer::push_public`].
    pub async fn send(&mut self) -> Result<()> {
        let r = self.wr.write_all(&self.out).await;
        self.out.clear();
        r?;
        Ok(())
    }

    /// Sends `text` privately to user `to` (for Redis: to channel `to`).
    pub async fn private(&mut self, to: &str, text: &str) -> Result<()> {
        self.out.clear();
        match self.kind {
            Kind::Natter => self.push_natter_private(to, text),
            // IRC PRIVMSG to a nick; Redis PUBLISH to the user's channel.
            Kind::Irc | Kind::NatterIrc => {
                self.out.extend_from_slice(b"PRIVMSG ");
                self.out.extend_from_slice(to.as_bytes());
                self.out.extend_from_slice(b" :");
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
            Kind::Redis => resp(&[b"PUBLISH", to.as_bytes(), text.as_bytes()], &mut self.out),
        }
        self.send().await
    }

    /// Asks to join `room` (natter `join`, IRC `JOIN #room`, Redis `SUBSCRIBE room` on
    /// the subscribing connection); the answer arrives as [`Event::Joined`].
    pub async fn join(&mut self, room: &str) -> Result<()> {
        self.out.clear();
        match self.kind {
            Kind::Natter => natter_proto::encode_into(
                &ClientFrame::Join {
                    id: None,
                    room: room.to_string(),
                },
                &mut self.out,
            ),
            Kind::Irc | Kind::NatterIrc => {
                self.out.extend_from_slice(b"JOIN #");
                self.out.extend_from_slice(room.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
            Kind::Redis => resp(&[b"SUBSCRIBE", room.as_bytes()], &mut self.out),
        }
        let wr = self.sub.as_mut().unwrap_or(&mut self.wr);
        let r = wr.write_all(&self.out).await;
        self.out.clear();
        r?;
        Ok(())
    }

    /// Answers a server ping (natter `pong` with the ping's id, IRC `PONG`).
    pub async fn pong(&mut self, arg: &PingArg) -> Result<()> {
        match arg {
            PingArg::Natter(id) => self.natter(&ClientFrame::Pong { id: id.clone() }).await,
            PingArg::Irc(arg) => self.raw(format!("PONG {arg}\r\n").as_bytes()).await,
        }
    }

    /// Says goodbye (best effort).
    pub async fn quit(&mut self) {
        self.out.clear();
        match self.kind {
            Kind::Natter => natter_proto::encode_into(
                &ClientFrame::Quit {
                    id: None,
                    message: None,
                },
                &mut self.out,
            ),
            Kind::Irc | Kind::NatterIrc => self.out.extend_from_slice(b"QUIT :bye\r\n"),
            Kind::Redis => self.out.extend_from_slice(b"*1\r\n$4\r\nQUIT\r\n"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.wr.write_all(&self.out)).await;
        self.out.clear();
        let _ = self.sub.take();
    }
}

/// Reads and discards everything (answering pings) until the connection ends.
pub async fn drain_session(mut reader: Reader, writer: Arc<tokio::sync::Mutex<Writer>>) {
    loop {
        match reader.next().await {
            Ok(Event::Ping(arg)) => {
                let _ = writer.lock().await.pong(&arg).await;
            }
            Ok(Event::Closed(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
