"""The composition root: one typed config in; the store, bus, log, taggers, pipeline and app out.

`copilot live`, `replay` and `serve`, the pipeline benchmark and the tests build their parts
here and nowhere else. It sits at the top of the package, beside `cli` and `bench` (its users),
because it builds the app: `server` sits above `session`, so a root inside `session/` would make
`session` import `server`. Nothing below imports this module (tests/test_import_graph.py checks
that the package has no import cycles).

Everything that can fail on bad input (rubric, LLM configuration, model) is built by
`tagging()` and `transcriber()` before a session is created, so a typo leaves no empty session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from fastapi import FastAPI

from copilot.asr.engine import load_model
from copilot.asr.options import AsrOptions
from copilot.asr.streaming import StreamingTranscriber
from copilot.asr.turns import TurnTranscriber
from copilot.audio.base import AudioSource
from copilot.events import SessionStarted, Status
from copilot.server.app import create_app
from copilot.server.auth import new_token
from copilot.session.audio_keeper import AudioKeeper, recorded_ms, recover_recording
from copilot.session.bus import DEFAULT_QUEUE_SIZE, Bus
from copilot.session.log import SessionLog
from copilot.session.pipeline import Emit, Pipeline, Refiner, Transcriber
from copilot.session.retention import apply_configured_retention
from copilot.session.store import SessionStore, default_store_path
from copilot.tagging.base import Tagger
from copilot.tagging.hybrid import LLMRefiner
from copilot.tagging.llm import LLMTagger
from copilot.tagging.rubric import Rubric, load_rubric
from copilot.tagging.select import build_llm, build_tagger

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class RuntimeConfig:
    """What one process runs with. The defaults are those of `copilot replay` with no options."""

    data_dir: str | Path | None = None  # the store: a directory (or a .db file); None: COPILOT_DATA_DIR or the user's
    token: str | None = None  # None: COPILOT_TOKEN, else a fresh random token
    host: str = "127.0.0.1"  # the interface served; another name is also accepted as the Host header
    rubric: str = "default"  # a rubric name or a YAML path
    llm: str | None = None  # a litellm model string: the LLM refines the rules tags live
    api_base: str | None = None
    llm_options: Mapping[str, Any] = field(default_factory=dict)  # to LLMTagger (timeout_s, window_turns...)
    asr: AsrOptions = field(default_factory=AsrOptions)
    keep_audio: bool = False
    turns: bool = True  # settle fragments into turns, decoded again as a whole (docs/turns.md)
    echo_gate: bool = True  # silence the other channel's leak before the VAD (docs/asr.md)
    bus_queue_size: int = DEFAULT_QUEUE_SIZE  # events a slow websocket client may fall behind before it is dropped


@dataclass
class Tagging:
    """The live path's taggers: rules inline, and the LLM behind a refiner when configured."""

    rubric: Rubric
    rubric_ref: str  # what a session stores as its rubric: the path when a YAML file was given, else the id
    tagger: Tagger
    llm: LLMTagger | None = None

    def refiner_factory(self) -> Callable[[Emit], Refiner] | None:
        llm = self.llm
        if llm is None:
            return None
        return lambda emit: LLMRefiner(llm, emit)


class Runtime:
    """One process's parts, built from a `RuntimeConfig`. Close it (or use `with`) to close the store.

    `asr_model`: an already loaded speech model to use instead of loading `config.asr.model`
    (the tests share one per module; a load takes about a second).
    """

    def __init__(self, config: RuntimeConfig | None = None, *, asr_model: "WhisperModel | None" = None) -> None:
        self.config = config = config or RuntimeConfig()
        self.store = SessionStore(default_store_path(config.data_dir))
        apply_configured_retention(self.store)  # retention_days (off by default): docs/security.md
        self.bus = Bus(queue_size=config.bus_queue_size)
        self.log = SessionLog(self.store, self.bus)
        self.token = config.token or new_token()
        self._model = asr_model
        self._tagging: Tagging | None = None

    # -- built on first use, before the session starts ------------------------------------------
    def tagging(self) -> Tagging:
        if self._tagging is None:
            c = self.config
            rubric = load_rubric(c.rubric)
            # Store the name the user gave when it is a path, so the server can load the same file.
            ref = c.rubric if Path(c.rubric).suffix in (".yaml", ".yml") else (rubric.id or c.rubric)
            llm = build_llm(rubric, c.llm, c.api_base, **dict(c.llm_options)) if c.llm else None
            self._tagging = Tagging(rubric, ref, build_tagger("rules", rubric), llm)
        return self._tagging

    def model(self) -> "WhisperModel":
        if self._model is None:
            a = self.config.asr
            self._model = load_model(a.model, a.device, a.compute_type)
        return self._model

    def transcriber(self, speakers: list[str], *, realtime: bool = True) -> StreamingTranscriber | TurnTranscriber:
        fragments = StreamingTranscriber(self.model(), speakers, realtime=realtime, echo_gate=self.config.echo_gate)
        if not self.config.turns:
            return fragments
        return TurnTranscriber(fragments, model_name=Path(self.config.asr.model).name)

    # -- sessions ---------------------------------------------------------------------------------
    def open_session(
        self,
        *,
        mode: Literal["live", "replay"],
        title: str,
        speakers: list[str],
        source: str,
        continue_id: str | None = None,
    ) -> tuple[str, int]:
        """Create the session, or take up `continue_id` (left live by an interrupted run).

        Returns (session id, audio offset in ms): a continued session's audio carries on one
        second after its last segment.
        """
        if continue_id:
            self.store.continue_session(continue_id)
            segs = self.store.segments(continue_id)
            offset = max((s["end_ms"] for s in segs), default=0) + 1000
            offset = max(offset, _kept_audio_ms(self.store.audio_path(continue_id), append=self.config.keep_audio))
            self.log.record_payload(
                continue_id,
                Status(
                    component="server",
                    message="session continued after an interruption",
                    details={"offset_ms": offset, "source": source},
                ),
            )
            return continue_id, offset
        c = self.config
        config = {"model": c.asr.model, "asr_device": c.asr.device, "llm": c.llm, "keep_audio": c.keep_audio}
        sid = self.store.create_session(
            SessionStarted(
                title=title,
                mode=mode,
                rubric=self.tagging().rubric_ref,
                speakers=speakers,
                source=source,
                config=config,
            )
        )
        return sid, 0

    def keeper(self, session_id: str, channels: int) -> AudioKeeper | None:
        """The session's audio writer when `keep_audio` is set."""
        if not self.config.keep_audio:
            return None
        return AudioKeeper(self.store.audio_path(session_id), channels)

    def pipeline(
        self,
        session_id: str,
        source: AudioSource,
        transcriber: Transcriber | None = None,
        *,
        tag: bool = True,
        keeper: AudioKeeper | None = None,
        **options: Any,
    ) -> Pipeline:
        """The session's live path: `source` -> ASR -> log, tagged by `tagging()` unless `tag=False`.

        `transcriber` defaults to one over `source.speakers`; `options` go to `Pipeline`
        (live_device, speed, offset_ms, status_interval_s...).
        """
        tagging = self.tagging() if tag else None
        if transcriber is None:
            transcriber = self.transcriber(list(source.speakers))
        return Pipeline(
            session_id=session_id,
            log=self.log,
            source=source,
            transcriber=transcriber,
            tagger=tagging.tagger if tagging else None,
            refiner_factory=tagging.refiner_factory() if tagging else None,
            keeper=keeper,
            turns=isinstance(transcriber, TurnTranscriber),
            **options,
        )

    # -- the app ----------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        host = self.config.host
        extra = frozenset({host}) if host not in LOCAL_HOSTS else frozenset()
        return create_app(self.store, self.bus, self.token, session_log=self.log, extra_hosts=extra)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kept_audio_ms(flac: Path, *, append: bool) -> int:
    """Audio kept for a session being continued. Without keep-audio, a crash's recording is
    recovered into the FLAC now; with it, the keeper appends to it. Either way the new run's clock
    starts after it, so audio and transcript share one timeline."""
    if not append:
        recover_recording(flac)
    return recorded_ms(flac)
