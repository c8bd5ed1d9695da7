"""Replay: how the weights changed during training, snapshot by snapshot, with a slider and
a play button."""

import time

import streamlit as st

from mlp_lab import figures
from mlp_lab.layers import layer_views
from mlp_lab.replay import MAX_SECONDS, REPLAY_STEPS
from mlp_lab.session import WAITING_POLL_SECONDS, get_lab, guarded, show_chart

lab = get_lab()
# Play shows one snapshot per SNAPSHOT_SECONDS of wall time (21 snapshots: ~10 s), however
# long a frame takes to draw: on a slow or busy machine it skips snapshots rather than crawl
# (one snapshot per tick gave one per 1.6 s, too slow to watch the weights change).
SNAPSHOT_SECONDS = 0.5
PLAY_SECONDS = 0.5  # the timer's tick while playing
RECORDING_POLL_SECONDS = 0.5


def _record() -> None:
    message = lab.record_replay(st.session_state["replay_steps"])
    if message:
        st.session_state["replay_message"] = message
    st.session_state["replay_idx"] = 0
    st.session_state["replay_playing"] = False
    _moved()


def _stop_recording() -> None:
    lab.stop_recording()


def _moved() -> None:
    """The code moved the position: the slider must be re-made there."""
    st.session_state["replay_gen"] = st.session_state.get("replay_gen", 0) + 1


def _play() -> None:
    replay = lab.replay
    if replay and st.session_state.get("replay_idx", 0) >= len(replay.steps) - 1:
        st.session_state["replay_idx"] = 0  # at the end: play from the start
        _moved()
    st.session_state["replay_playing"] = True


def _pause() -> None:
    st.session_state["replay_playing"] = False


st.title("Replay")
st.caption(
    "**What am I looking at?** A film of the weights learning. Press **Record**: a fresh copy "
    "of your current model (same settings, new random weights) trains for a moment while we "
    "take 21 snapshots of its weights. Then drag the slider or press **Play** to watch them "
    "change: patterns grow out of the random start. Colours keep the same meaning in every "
    "frame (red +, blue −, white 0), so fading and brightening are real.")

if "replay_steps" not in st.session_state:
    st.session_state["replay_steps"] = 500 if lab.choice.kind == "dense" else 2000
recording = lab.recording
c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
c1.select_slider("Steps to record", REPLAY_STEPS, key="replay_steps", format_func=lambda v: f"{v:,}",
                 help=f"How long the recorded training is. It never takes more than "
                      f"{MAX_SECONDS:g} seconds; the model on the other pages is not touched.")
if recording:
    c2.button("Stop", on_click=_stop_recording, width="stretch", icon=":material/stop:",
              help="Stop the recording: the snapshots taken so far are kept.")
else:
    c2.button("Record", type="primary", on_click=_record, width="stretch",
              help="Train a fresh copy of the current model's settings and keep 21 snapshots.")
replay = None if recording else lab.replay
playing = bool(st.session_state.get("replay_playing")) and replay is not None
c3.button("Play", on_click=_play, disabled=replay is None or playing, width="stretch",
          icon=":material/play_arrow:", help="Step through the snapshots, one every "
                                              f"{SNAPSHOT_SECONDS:g} s.")
c4.button("Pause", on_click=_pause, disabled=not playing, width="stretch",
          icon=":material/pause:", help="Stop at the current snapshot.")

message = st.session_state.pop("replay_message", None)
if message:
    st.error(message)


@st.fragment(run_every=(WAITING_POLL_SECONDS if lab.recording_waits else RECORDING_POLL_SECONDS)
             if recording else None)
@guarded
def recording_progress() -> None:
    if lab.recording_waits:
        st.info("**Waiting for a free trainer**: the server's trainers are all busy with other "
                "students' runs. The recording starts on its own; keep this page open.",
                icon=":material/hourglass_top:")
    elif lab.recording:
        st.progress(lab.recording_fraction,
                    text=f"Recording: training a fresh copy and taking snapshots… "
                         f"{lab.recording_fraction:.0%}")
    else:
        st.rerun()  # done: show the film


if recording:
    recording_progress()
elif replay is None:
    st.info("Press **Record** to train a fresh copy of your model and take the snapshots "
            "(a few seconds).")
else:
    note = " (stopped early: the time limit was reached)" if replay.stopped_early else ""
    st.caption(f"Recorded: {replay.description}, {replay.steps[-1]:,} steps in "
               f"{replay.seconds:.1f} s{note}.")


@st.fragment(run_every=PLAY_SECONDS if playing else None)
@guarded
def frames(replay, playing: bool) -> None:
    last = len(replay.steps) - 1
    i = min(st.session_state.get("replay_idx", 0), last)  # a plain key, not the widget's
    if playing:
        started, first = st.session_state.setdefault("replay_clock", (time.monotonic(), i))
        shown = min(first + int((time.monotonic() - started) / SNAPSHOT_SECONDS), last)
        if shown != i:
            i = shown
            _moved()
    else:
        st.session_state.pop("replay_clock", None)
    # The slider's key changes whenever the code moves the position (a tick, Play, Record):
    # a new widget starts at the new value; a drag returns the value the user chose.
    i = st.slider("Snapshot", 0, last, value=i, key=f"replay_slider_{st.session_state.get('replay_gen', 0)}",
                  help="Drag to move through training: 0 is the random start, the right end the "
                       "last snapshot.")
    st.session_state["replay_idx"] = i
    step = replay.steps[i]
    m1, m2 = st.columns(2)
    m1.metric("Step", f"{step:,}", help="Training steps taken when this snapshot was made.")
    m2.metric("Validation accuracy", f"{replay.accuracy[i]:.0%}",
              help="Share of 500 unseen images this snapshot gets right.")
    loss = figures.loss_figure(replay.loss_steps, replay.losses, x_max=replay.steps[-1], height=240)
    loss.add_vline(x=step, line=dict(color="#cf222e", width=2))
    show_chart(st, loss, key="replay_loss")
    views = {v.weight: v for v in layer_views(replay)}
    if replay.kind == "dense":
        w1 = replay.weights("w1", i)[:, :64]  # (784, 64): the first 64 neurons
        st.caption(f"Below: the first 64 of layer 1's {replay.levels['w1'][i].shape[1]} neurons, "
                   "each drawn as a 28 × 28 picture of its 784 weights (one per pixel). Press "
                   "Play and compare step 0 with the last step.")
        show_chart(st, figures.neuron_grid(w1, height=520, what="its weights, step " f"{step:,}"),
                        key="replay_grid")
    for name in replay.levels:
        view = views.get(name)
        title = view.title if view else name
        show_chart(st, figures.weight_heatmap(replay.weights(name, i), f"{title} · step {step:,}",
                                               rows=view.rows if view else "",
                                               cols=view.cols if view else "",
                                               limit=replay.limits[name]),
                        key=f"replay_{name}")
    if playing and i >= last:
        st.session_state["replay_playing"] = False
        st.rerun()  # the end: stop the timer


if replay is not None:
    frames(replay, playing)
