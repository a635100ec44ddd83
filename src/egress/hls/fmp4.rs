//! Fragmented MP4 (CMAF) writing, sans-IO: the initialization segment
//! (`ftyp` + `moov` with `mvex`) and media fragments (`moof` + `mdat`).
//!
//! References: ISO/IEC 14496-12 (ISOBMFF) §4.3 `ftyp`, §8.2–8.7 `moov` and
//! sample tables, §8.8 movie fragments (`mvex`/`trex` §8.8.3, `moof`/`mfhd`
//! §8.8.4–8.8.5, `tfhd` §8.8.7, `trun` §8.8.8, `tfdt` §8.8.12, sample flags
//! §8.8.3.1); ISO/IEC 14496-15 §5.3.3 (`avc1`/`avcC`, 4-byte NAL length
//! prefixes) and §8.3.3 (`hvc1`/`hvcC`); ISO/IEC 14496-14 §3.1.2 / 14496-1
//! §7.2.6 (`mp4a`/`esds`, AudioSpecificConfig as DecoderSpecificInfo); ISO/IEC
//! 23000-19 (CMAF) §7 for the brands.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    Atom, Avc1, Avcc, Codec as StsdCodec, Decode, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr,
    Hvc1, Hvcc, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd,
    Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Visual,
    Vmhd,
};

use crate::codec::nal::{NalKind, classify};
use crate::codec::{Codec, CodecError};
use crate::media::{AudioTrack, TrackInfo, VideoTrack};

/// Track ID of the video track in every init segment and fragment.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track ID of the audio track (present only with AAC audio).
pub const AUDIO_TRACK_ID: u32 = 2;

/// `sample_flags` of a sync sample: `sample_depends_on = 2` (does not depend
/// on others), `sample_is_non_sync_sample = 0` (ISO/IEC 14496-12 §8.8.3.1).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on = 1`,
/// `sample_is_non_sync_sample = 1`.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

#[derive(Debug, thiserror::Error)]
pub enum Fmp4Error {
    #[error("cannot build the {codec} decoder configuration: {source}")]
    DecoderConfiguration {
        codec: Codec,
        #[source]
        source: CodecError,
    },
    #[error("cannot read the {codec} decoder configuration record: {message}")]
    Record { codec: Codec, message: String },
    #[error("{codec} is not supported in fMP4 for MSE")]
    UnsupportedCodec { codec: Codec },
    #[error("an init segment needs a video track")]
    NoVideoTrack,
    #[error("cannot encode the {what} box: {message}")]
    Encode { what: &'static str, message: String },
    #[error("fragment too large: {bytes} bytes")]
    TooLarge { bytes: usize },
    #[error("sample timestamp out of range: {value}")]
    Timestamp { value: i64 },
}

fn encode_err(what: &'static str) -> impl FnOnce(mp4_atom::Error) -> Fmp4Error {
    move |e| Fmp4Error::Encode {
        what,
        message: e.to_string(),
    }
}

/// One sample of a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in the track timescale, already rebased to be >= 0.
    pub dts: u64,
    /// Composition offset (pts - dts) in the track timescale.
    pub cts_offset: i32,
    /// Duration in the track timescale.
    pub duration: u32,
    pub keyframe: bool,
    pub data: SampleData,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleData {
    /// Video NAL units without start codes; written with 4-byte length
    /// prefixes (ISO/IEC 14496-15 §5.3.2, `lengthSizeMinusOne = 3`).
    /// Parameter sets and AUDs are dropped: they are in `avcC`/`hvcC`.
    Nals(Vec<Bytes>),
    /// One raw AAC frame.
    Audio(Bytes),
}

impl SampleData {
    /// Builds video sample data, dropping in-band parameter sets and AUDs.
    pub fn video(codec: Codec, nals: &[Bytes]) -> Self {
        SampleData::Nals(
            nals.iter()
                .filter(|n| {
                    !n.is_empty()
                        && matches!(classify(codec, n), NalKind::KeySlice | NalKind::Other)
                })
                .cloned()
                .collect(),
        )
    }

    /// Size in the `mdat`.
    pub fn size(&self) -> usize {
        match self {
            SampleData::Nals(n) => n.iter().map(|n| 4 + n.len()).sum(),
            SampleData::Audio(b) => b.len(),
        }
    }

    fn write(&self, out: &mut BytesMut) {
        match self {
            SampleData::Nals(nals) => {
                for n in nals {
                    // Bounded by Fragment size checks (u32) before writing.
                    out.put_u32(n.len() as u32);
                    out.put_slice(n);
                }
            }
            SampleData::Audio(b) => out.put_slice(b),
        }
    }
}

/// The samples of one track in a fragment.
#[derive(Clone, Copy, Debug)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    pub samples: &'a [Sample],
}

/// Builds the initialization segment for a video track and an optional AAC
/// audio track. Timescales: 90 kHz video, the sample rate for audio.
pub fn init_segment(video: &TrackInfo, audio: Option<&TrackInfo>) -> Result<Bytes, Fmp4Error> {
    let TrackInfo::Video(v) = video else {
        return Err(Fmp4Error::NoVideoTrack);
    };
    let mut traks = vec![video_trak(v)?];
    let mut trex = vec![trex(VIDEO_TRACK_ID)];
    if let Some(a) = audio {
        let TrackInfo::Audio(a) = a else {
            return Err(Fmp4Error::UnsupportedCodec { codec: a.codec() });
        };
        traks.push(audio_trak(a)?);
        trex.push(self::trex(AUDIO_TRACK_ID));
    }
    // CMAF brands (ISO/IEC 23000-19 §7.2): iso6 for tfdt v1 / default-base-is-moof.
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: vec![
            FourCC::new(b"iso6"),
            FourCC::new(b"cmfc"),
            FourCC::new(b"mp41"),
        ],
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: AUDIO_TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak: traks,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(1024);
    ftyp.encode(&mut buf).map_err(encode_err("ftyp"))?;
    moov.encode(&mut buf).map_err(encode_err("moov"))?;
    Ok(Bytes::from(buf))
}

fn trex(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        ..Default::default()
    }
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![
                Url {
                    location: String::new(),
                }
                .into(),
            ],
        },
    }
}

fn empty_stbl(codec: StsdCodec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

/// Decodes a box body through mp4-atom by prefixing it with a box header.
fn decode_record<T: Atom>(body: &[u8]) -> Result<T, mp4_atom::Error> {
    let mut boxed = Vec::with_capacity(body.len() + 8);
    boxed.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    boxed.extend_from_slice(&<[u8; 4]>::from(T::KIND));
    boxed.extend_from_slice(body);
    T::decode(&mut boxed.as_slice())
}

fn video_trak(v: &VideoTrack) -> Result<Trak, Fmp4Error> {
    let record = v
        .decoder_configuration()
        .map_err(|source| Fmp4Error::DecoderConfiguration {
            codec: v.codec,
            source,
        })?;
    let visual = Visual {
        data_reference_index: 1,
        width: u16::try_from(v.width).unwrap_or(u16::MAX),
        height: u16::try_from(v.height).unwrap_or(u16::MAX),
        horizresolution: 72.into(),
        vertresolution: 72.into(),
        frame_count: 1,
        compressor: "".into(),
        depth: 24,
    };
    let bad = |message: String| Fmp4Error::Record {
        codec: v.codec,
        message,
    };
    let codec = match v.codec {
        Codec::H264 => {
            let mut avcc: Avcc = decode_record(&record).map_err(|e| bad(e.to_string()))?;
            avcc.length_size = 4;
            StsdCodec::Avc1(Avc1 {
                visual,
                avcc,
                btrt: None,
                colr: None,
                pasp: None,
                taic: None,
                fiel: None,
                spatial: None,
            })
        }
        Codec::H265 => {
            let mut hvcc: Hvcc = decode_record(&record).map_err(|e| bad(e.to_string()))?;
            hvcc.length_size_minus_one = 3;
            StsdCodec::Hvc1(Hvc1 {
                visual,
                hvcc,
                lhvc: None,
                btrt: None,
                colr: None,
                pasp: None,
                taic: None,
                fiel: None,
                ccst: None,
                spatial: None,
            })
        }
        other => return Err(Fmp4Error::UnsupportedCodec { codec: other }),
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK_ID,
            enabled: true,
            in_movie: true,
            width: (v.width.min(u32::from(u16::MAX)) as u16).into(),
            height: (v.height.min(u32::from(u16::MAX)) as u16).into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: 90_000,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(b"vide"),
                name: "camgate video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(codec),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn audio_trak(a: &AudioTrack) -> Result<Trak, Fmp4Error> {
    let (Codec::Aac, Some(config)) = (a.codec, &a.config) else {
        return Err(Fmp4Error::UnsupportedCodec { codec: a.codec });
    };
    let asc = crate::codec::aac::parse_audio_specific_config(config).map_err(|source| {
        Fmp4Error::DecoderConfiguration {
            codec: Codec::Aac,
            source,
        }
    })?;
    let first = config.first().copied().unwrap_or(0);
    let second = config.get(1).copied().unwrap_or(0);
    let esds = Esds {
        es_desc: mp4_atom::esds::EsDescriptor {
            es_id: AUDIO_TRACK_ID as u16,
            depends_on_es_id: None,
            url: None,
            ocr_es_id: None,
            stream_priority: 0,
            dec_config: mp4_atom::esds::DecoderConfig {
                // 0x40: Audio ISO/IEC 14496-3; stream type 5: AudioStream.
                object_type_indication: 0x40,
                stream_type: 5,
                up_stream: 0,
                buffer_size_db: Default::default(),
                max_bitrate: 0,
                avg_bitrate: 0,
                dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                    profile: first >> 3,
                    freq_index: ((first & 7) << 1) | (second >> 7),
                    chan_conf: (second >> 3) & 0xf,
                    raw: config.to_vec(),
                }),
            },
            sl_config: mp4_atom::esds::SLConfig {},
        },
    };
    let rate = u16::try_from(asc.sample_rate).unwrap_or(0);
    let codec = StsdCodec::Mp4a(Mp4a {
        audio: mp4_atom::Audio {
            data_reference_index: 1,
            channel_count: u16::from(a.channels.max(1)),
            sample_size: 16,
            sample_rate: rate.into(),
        },
        esds,
        btrt: None,
        taic: None,
    });
    Ok(Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            alternate_group: 1,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: a.sample_rate.max(1),
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(b"soun"),
                name: "camgate audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(codec),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

/// Builds one fragment: `moof` (mfhd, one `traf` per non-empty run with tfhd,
/// tfdt and a `trun` carrying per-sample duration, size, flags and
/// composition offset) followed by one `mdat` with the runs' data in order.
pub fn fragment(sequence_number: u32, runs: &[TrackRun<'_>]) -> Result<Bytes, Fmp4Error> {
    let runs: Vec<&TrackRun<'_>> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut data_len = 0usize;
    let mut run_lens = Vec::with_capacity(runs.len());
    for r in &runs {
        let mut len = 0usize;
        for s in r.samples {
            let size = s.data.size();
            if u32::try_from(size).is_err() {
                return Err(Fmp4Error::TooLarge { bytes: size });
            }
            len += size;
        }
        run_lens.push(len);
        data_len += len;
    }
    let build = |offsets: &[i32]| -> Moof {
        Moof {
            mfhd: Mfhd { sequence_number },
            traf: runs
                .iter()
                .zip(offsets)
                .map(|(r, &off)| Traf {
                    tfhd: Tfhd {
                        track_id: r.track_id,
                        default_base_is_moof: true,
                        ..Default::default()
                    },
                    tfdt: Some(Tfdt {
                        base_media_decode_time: r.samples.first().map_or(0, |s| s.dts),
                    }),
                    trun: vec![Trun {
                        data_offset: Some(off),
                        samples: TrunSamples::Explicit(
                            r.samples
                                .iter()
                                .map(|s| TrunEntry {
                                    duration: Some(s.duration),
                                    size: Some(s.data.size() as u32),
                                    flags: Some(if s.keyframe {
                                        SAMPLE_FLAGS_SYNC
                                    } else {
                                        SAMPLE_FLAGS_NON_SYNC
                                    }),
                                    cts: Some(i64::from(s.cts_offset)),
                                })
                                .collect(),
                        ),
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    };
    // The moof size does not depend on the offset values: measure, then fill in.
    let zeros = vec![0i32; runs.len()];
    let mut probe = Vec::new();
    build(&zeros)
        .encode(&mut probe)
        .map_err(encode_err("moof"))?;
    let moof_len = probe.len();
    let total = moof_len + 8 + data_len;
    let Ok(mdat_size) = u32::try_from(8 + data_len) else {
        return Err(Fmp4Error::TooLarge { bytes: total });
    };
    let mut offsets = Vec::with_capacity(runs.len());
    let mut at = moof_len + 8;
    for len in &run_lens {
        offsets.push(i32::try_from(at).map_err(|_| Fmp4Error::TooLarge { bytes: total })?);
        at += len;
    }
    let mut moof = Vec::with_capacity(moof_len);
    build(&offsets)
        .encode(&mut moof)
        .map_err(encode_err("moof"))?;
    let mut out = BytesMut::with_capacity(total);
    out.put_slice(&moof);
    out.put_u32(mdat_size);
    out.put_slice(b"mdat");
    for r in &runs {
        for s in r.samples {
            s.data.write(&mut out);
        }
    }
    Ok(out.freeze())
}
