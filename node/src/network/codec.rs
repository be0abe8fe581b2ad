//! Request-response codecs of the two protocols, with their size bounds enforced while
//! reading.
//!
//! Every message is one frame on its own stream: a 4-byte big-endian length, then that many
//! bytes. A claimed length above the protocol's bound is refused before anything else is
//! read, and the payload is read incrementally (the buffer grows with the bytes actually
//! received), so a peer cannot make us allocate by lying about a length. Payloads are then
//! decoded with the bounded decoders of [`crate::messages`], in the connection's own task
//! rather than in the network actor.
//!
//! A refused *request* is still handed to the actor, as [`GossipFrame::Invalid`] or
//! [`SyncAsk::Invalid`], because libp2p reports a failed `read_request` to nobody: this is
//! how the actor learns who sent it and counts a strike. A refused *response* is an
//! [`io::Error`] of kind [`io::ErrorKind::InvalidData`] wrapping a [`CodecError`], which
//! libp2p does report; the actor recognises it with [`codec_error`].

use crate::messages::{
    GOSSIP_BYTES_MAX, GossipMsg, SYNC_REQUEST_BYTES_MAX, SYNC_RESPONSE_BYTES_MAX, SyncRequest,
    SyncResponse,
};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ledger::codec::DecodeError;
use libp2p::StreamProtocol;
use libp2p::request_response;
use std::io;
use std::sync::Arc;

/// The gossip push protocol: request = one [`GossipMsg`], response = an empty ack.
pub const GOSSIP_PROTOCOL: StreamProtocol = StreamProtocol::new("/govledger/gossip/2");
/// The block sync protocol: request = [`SyncRequest`], response = [`SyncResponse`].
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/govledger/sync/2");

/// Size of the length prefix of a frame.
const FRAME_PREFIX_BYTES: usize = 4;
/// Most bytes reserved up front for a frame, whatever its claimed length: the buffer grows
/// only as bytes actually arrive.
const FRAME_PREALLOC_BYTES_MAX: usize = 64 * 1024;
/// Largest gossip ack (it is empty; anything else is garbage).
const GOSSIP_ACK_BYTES_MAX: usize = 0;

/// Why a frame from a peer was refused.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CodecError {
    /// The frame claims more bytes than the protocol allows.
    #[error("{what} frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Claimed length.
        len: usize,
        /// Bound.
        max: usize,
    },
    /// The payload does not decode.
    #[error("undecodable {what}: {source}")]
    Decode {
        /// Which message.
        what: &'static str,
        /// The decoder's verdict.
        source: DecodeError,
    },
}

impl CodecError {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// The [`CodecError`] inside an I/O error, if the error is a refused frame (as opposed to a
/// transport failure, a timeout or a closed stream, which are nobody's fault).
pub fn codec_error(e: &io::Error) -> Option<&CodecError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CodecError>())
}

/// Reads one frame of at most `max` bytes. The outer error is the transport's; the inner
/// one a refused frame.
async fn read_frame<T>(
    io: &mut T,
    what: &'static str,
    max: usize,
) -> io::Result<Result<Vec<u8>, CodecError>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Ok(Err(CodecError::TooLarge { what, len, max }));
    }
    let mut buf = Vec::with_capacity(len.min(FRAME_PREALLOC_BYTES_MAX));
    let read = (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if read != len {
        // The peer closed its side mid-frame. Not counted as garbage: a peer shutting down
        // can cause it too.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what} frame truncated at {read} of {len} bytes"),
        ));
    }
    Ok(Ok(buf))
}

/// Reads and decodes one frame, as a request: a refusal is a value.
async fn read_request_frame<T, M>(
    io: &mut T,
    what: &'static str,
    max: usize,
    decode: impl FnOnce(&[u8]) -> Result<M, DecodeError>,
) -> io::Result<Result<M, CodecError>>
where
    T: AsyncRead + Unpin + Send,
{
    Ok(read_frame(io, what, max)
        .await?
        .and_then(|bytes| decode(&bytes).map_err(|source| CodecError::Decode { what, source })))
}

/// Reads and decodes one frame, as a response: a refusal is an error.
async fn read_response_frame<T, M>(
    io: &mut T,
    what: &'static str,
    max: usize,
    decode: impl FnOnce(&[u8]) -> Result<M, DecodeError>,
) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
{
    read_request_frame(io, what, max, decode)
        .await?
        .map_err(CodecError::into_io)
}

/// Writes one frame. The length always fits: every payload we encode is bounded far below
/// 4 GiB, and a larger one is refused rather than truncated.
async fn write_frame<T>(io: &mut T, payload: &[u8]) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes is too large to send", payload.len()),
        )
    })?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(payload).await?;
    io.flush().await
}

/// A gossip message on the wire. A broadcast encodes its message once and shares the bytes
/// between every peer's stream; a received message arrives decoded, or refused.
#[allow(
    clippy::large_enum_variant,
    reason = "moved once from the connection task to the actor; boxing would allocate per message"
)]
#[derive(Clone, Debug)]
pub enum GossipFrame {
    /// To send: the canonical encoding of a [`GossipMsg`].
    Encoded(Arc<[u8]>),
    /// Received and decoded with [`GossipMsg::decode`], with its frame's length.
    Decoded(GossipMsg, usize),
    /// Received and refused (never sent).
    Invalid(CodecError),
}

/// A sync request on the wire: received decoded, or refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAsk {
    /// A request, decoded with [`SyncRequest::decode`].
    Valid(SyncRequest),
    /// Received and refused (never sent).
    Invalid(String),
}

fn unsendable(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("a refused {what} is not sent"),
    )
}

/// Codec of [`GOSSIP_PROTOCOL`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GossipCodec;

impl request_response::Codec for GossipCodec {
    type Protocol = StreamProtocol;
    type Request = GossipFrame;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<GossipFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let msg = read_request_frame(io, "gossip", GOSSIP_BYTES_MAX, |b: &[u8]| {
            GossipMsg::decode(b).map(|m| (m, b.len()))
        })
        .await?;
        Ok(msg.map_or_else(GossipFrame::Invalid, |(m, len)| {
            GossipFrame::Decoded(m, len)
        }))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_response_frame(io, "gossip ack", GOSSIP_ACK_BYTES_MAX, |_| Ok(())).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: GossipFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            GossipFrame::Encoded(bytes) => write_frame(io, &bytes).await,
            GossipFrame::Decoded(msg, _) => write_frame(io, &msg.encode()).await,
            GossipFrame::Invalid(_) => Err(unsendable("gossip message")),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &[]).await
    }
}

/// Codec of [`SYNC_PROTOCOL`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncAsk;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncAsk>
    where
        T: AsyncRead + Unpin + Send,
    {
        let req = read_request_frame(
            io,
            "sync request",
            SYNC_REQUEST_BYTES_MAX,
            SyncRequest::decode,
        )
        .await?;
        Ok(req.map_or_else(|e| SyncAsk::Invalid(e.to_string()), SyncAsk::Valid))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_response_frame(
            io,
            "sync response",
            SYNC_RESPONSE_BYTES_MAX,
            SyncResponse::decode,
        )
        .await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncAsk,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            SyncAsk::Valid(req) => write_frame(io, &ledger::codec::encode(&req)).await,
            SyncAsk::Invalid(_) => Err(unsendable("sync request")),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &ledger::codec::encode(&res)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use libp2p::request_response::Codec as _;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn gossip_round_trip() {
        let msg = GossipMsg::Status(crate::messages::Status {
            height: 3,
            block_hash: ledger::hash::Hash::ZERO,
            round: 1,
            commit: None,
        });
        let mut wire = Vec::new();
        block_on(GossipCodec.write_request(
            &GOSSIP_PROTOCOL,
            &mut wire,
            GossipFrame::Encoded(msg.encode().into()),
        ))
        .unwrap();
        assert_eq!(wire, framed(&msg.encode()));
        let got = block_on(GossipCodec.read_request(&GOSSIP_PROTOCOL, &mut wire.as_slice()));
        assert!(
            matches!(got, Ok(GossipFrame::Decoded(m, len)) if m == msg && len == msg.encode().len())
        );
    }

    #[test]
    fn oversize_claim_is_refused_before_reading() {
        // Claims one byte more than allowed and sends nothing else: refused at the prefix.
        let claim = ((GOSSIP_BYTES_MAX + 1) as u32).to_be_bytes();
        let got = block_on(GossipCodec.read_request(&GOSSIP_PROTOCOL, &mut &claim[..]));
        assert!(matches!(
            got,
            Ok(GossipFrame::Invalid(CodecError::TooLarge { len, .. })) if len == GOSSIP_BYTES_MAX + 1
        ));
        let claim = ((SYNC_REQUEST_BYTES_MAX + 1) as u32).to_be_bytes();
        let got = block_on(SyncCodec.read_request(&SYNC_PROTOCOL, &mut &claim[..]));
        assert!(matches!(got, Ok(SyncAsk::Invalid(_))));
        // Responses: an error that says it is the peer's fault.
        let claim = ((SYNC_RESPONSE_BYTES_MAX + 1) as u32).to_be_bytes();
        let err = block_on(SyncCodec.read_response(&SYNC_PROTOCOL, &mut &claim[..]))
            .err()
            .unwrap();
        assert!(matches!(
            codec_error(&err),
            Some(CodecError::TooLarge { .. })
        ));
        // A non-empty ack is garbage.
        let err = block_on(GossipCodec.read_response(&GOSSIP_PROTOCOL, &mut &framed(b"x")[..]))
            .err()
            .unwrap();
        assert!(codec_error(&err).is_some());
    }

    #[test]
    fn garbage_is_refused_and_truncation_is_an_io_error() {
        let wire = framed(&[0xff; 40]);
        let got = block_on(GossipCodec.read_request(&GOSSIP_PROTOCOL, &mut wire.as_slice()));
        assert!(matches!(
            got,
            Ok(GossipFrame::Invalid(CodecError::Decode { .. }))
        ));
        let got = block_on(SyncCodec.read_request(&SYNC_PROTOCOL, &mut wire.as_slice()));
        assert!(matches!(got, Ok(SyncAsk::Invalid(_))));
        let err = block_on(SyncCodec.read_response(&SYNC_PROTOCOL, &mut wire.as_slice()))
            .err()
            .unwrap();
        assert!(matches!(codec_error(&err), Some(CodecError::Decode { .. })));

        let mut cut = framed(
            &GossipMsg::Status(crate::messages::Status {
                height: 1,
                block_hash: ledger::hash::Hash::ZERO,
                round: 0,
                commit: None,
            })
            .encode(),
        );
        cut.truncate(cut.len() - 1);
        let err = block_on(GossipCodec.read_request(&GOSSIP_PROTOCOL, &mut cut.as_slice()))
            .err()
            .unwrap();
        assert!(codec_error(&err).is_none());
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Refused frames are never written.
        let mut out = Vec::new();
        assert!(
            block_on(GossipCodec.write_request(
                &GOSSIP_PROTOCOL,
                &mut out,
                GossipFrame::Invalid(CodecError::Decode {
                    what: "x",
                    source: DecodeError::NonCanonical
                })
            ))
            .is_err()
        );
        assert!(out.is_empty());
    }

    #[test]
    fn sync_round_trip() {
        let req = SyncRequest {
            from_height: 5,
            count: 9,
        };
        let mut wire = Vec::new();
        block_on(SyncCodec.write_request(&SYNC_PROTOCOL, &mut wire, SyncAsk::Valid(req))).unwrap();
        let got = block_on(SyncCodec.read_request(&SYNC_PROTOCOL, &mut wire.as_slice())).unwrap();
        assert_eq!(got, SyncAsk::Valid(req));

        let res = SyncResponse {
            tip_height: 12,
            blocks: vec![],
        };
        let mut wire = Vec::new();
        block_on(SyncCodec.write_response(&SYNC_PROTOCOL, &mut wire, res.clone())).unwrap();
        let got = block_on(SyncCodec.read_response(&SYNC_PROTOCOL, &mut wire.as_slice())).unwrap();
        assert_eq!(got, res);
    }
}
