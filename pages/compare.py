"""Notebook vs modern: the notebook's network and a modern one trained side by side, and
the ladder of one-change-at-a-time steps between them."""

import streamlit as st

from mlp_lab import teaching_figures as tf
from mlp_lab.session import get_lab, guarded, show_chart
from mlp_lab.teaching import (DEFAULT_LADDER_STEPS, LADDER, LADDER_STEPS, NOTEBOOK_RERUNS,
                              NOTEBOOK_STORY, RERUN_KEY, RUNGS, get_experiments, ladder_summary)

get_lab()
experiments = get_experiments()
ORDER = [rung.key for rung in LADDER]


def _run_ladder() -> None:
    experiments.request(ORDER, st.session_state["cmp_steps"])


def _run_rerun() -> None:
    experiments.request([RERUN_KEY], NOTEBOOK_RERUNS * 2000)


if "cmp_steps" not in st.session_state:
    st.session_state["cmp_steps"] = st.session_state.get("cmp_steps_keep", DEFAULT_LADDER_STEPS)

st.title("Notebook vs modern")
st.caption(
    "**What am I looking at?** The same task, two networks: the slow one from the original "
    "notebook and a modern one. In between, a *ladder*: we change **one thing at a time** and "
    "train each version for the same number of steps, so you can see what each change buys. "
    "The lines show how many unseen images each version gets right as it trains.")

c1, c2 = st.columns([2, 3])
c1.select_slider("Steps for every network", LADDER_STEPS, key="cmp_steps",
                 format_func=lambda v: f"{v:,}",
                 on_change=lambda: st.session_state.update(cmp_steps_keep=st.session_state["cmp_steps"]),
                 help="Every version trains this many steps from fresh random weights, so the "
                      "comparison is fair. 2,000 is one run of the notebook's cell.")
steps = st.session_state["cmp_steps"]
c2.button("Train all six", type="primary", on_click=_run_ladder, disabled=experiments.busy,
          help="Trains the six versions one after the other in the background (a few seconds "
               "each). Results are kept on the server, so the next student sees them at once.")


@st.fragment(run_every=1.0 if experiments.busy else None)
@guarded
def ladder_view(polling: bool) -> None:
    current, fraction, queued = experiments.progress()
    results = experiments.results(steps)
    if current is not None:
        key, job_steps = current
        name = RUNGS[key].title if key in RUNGS else "the notebook, re-run"
        if experiments.waiting:  # every trainer of the server is busy: say so, not "0 %"
            st.info(f"Waiting for a free trainer to train {name}: other students are training. "
                    "It starts on its own.", icon=":material/hourglass_top:")
        else:
            st.progress(min(fraction, 1.0), text=f"Training {name} ({job_steps:,} steps)… "
                                                 f"{len(queued)} more waiting")
    if not results:
        st.info("Press **Train all six** to train the notebook's network, the four one-change "
                "steps and the modern network, each for the same number of steps.")
    else:
        left, right = st.columns(2)
        for column, key, label in ((left, "notebook", "The notebook"),
                                   (right, "dense", "A modern network")):
            result = results.get(key)
            with column, st.container(border=True):
                st.markdown(f"**{label}** — {RUNGS[key].choice.describe_training()}")
                if result is None:
                    st.caption("Not trained yet.")
                    continue
                if result.status != "finished":
                    st.caption(f"Stopped early at step {result.steps:,}: the server was busy.")
                m1, m2 = st.columns(2)
                m1.metric("Test accuracy", f"{result.test_accuracy:.1%}",
                          help="Share of the 10,000 test images it answers correctly after training.")
                m2.metric("Training time", f"{result.seconds:.1f} s",
                          help="Wall time of its training steps on this server.")
        done = [k for k in ORDER if k in results]
        curves = [(k, RUNGS[k].title, results[k].val_steps, results[k].val_accuracy) for k in done]
        show_chart(st, tf.ladder_accuracy_figure(curves), key="ladder_accuracy")
        st.header("The ladder: one change at a time")
        st.caption("Each bar is one version, trained for the same number of steps. Read it left "
                   "to right: the difference between two neighbours is what that one change bought.")
        show_chart(st, tf.ladder_bar_figure([RUNGS[k].title for k in done],
                                             [results[k].test_accuracy for k in done], done),
                   key="ladder_bars")
        # A table, not a dataframe: its cells wrap, so the "change" column is read whole.
        st.table(ladder_summary(results), hide_index=True)
        loss_curves = [(k, RUNGS[k].title, results[k].loss_steps, results[k].losses) for k in done]
        show_chart(st, tf.ladder_loss_figure(loss_curves), key="ladder_loss")
        st.caption("Careful: squared error (version 1) and cross-entropy (the others) measure "
                   "wrongness on different scales. Compare how the curves fall, not their heights.")
        with st.expander("What each change does, in plain words"):
            for rung in LADDER:
                st.markdown(f"**{rung.title}.** {rung.change} *{rung.why}*")
    if polling and not experiments.busy:
        st.rerun()  # finished: re-enable the buttons, stop polling


ladder_view(experiments.busy)

st.header("Why the notebook needed its cell re-run many times to reach 66.8 %")
st.markdown(NOTEBOOK_STORY)
st.button(f"Re-run the notebook's cell {NOTEBOOK_RERUNS} times ({NOTEBOOK_RERUNS * 2000:,} steps)",
          on_click=_run_rerun, disabled=experiments.busy,
          help="Trains the notebook's network for 20,000 steps, as ten runs of its cell did "
               "(5-10 seconds, more on a busy server), and draws its accuracy as it goes.")
# Polls while the server-wide worker is busy: the re-run takes several seconds, and its
# progress is shown here, under the button the student pressed (not only at the top).
@st.fragment(run_every=1.0 if experiments.busy else None)
@guarded
def rerun_view(polling: bool) -> None:
    job = (RERUN_KEY, NOTEBOOK_RERUNS * 2000)
    current, fraction, queued = experiments.progress()
    if current == job:
        if experiments.waiting:
            st.info("Waiting for a free trainer: other students are training. It starts on its own.",
                    icon=":material/hourglass_top:")
        else:
            st.progress(min(fraction, 1.0), text=f"Re-running the notebook's cell: step "
                                                 f"{int(fraction * job[1]):,} of {job[1]:,}…")
    elif job in queued:
        st.info("Queued: the re-run starts when the ladder above has finished.",
                icon=":material/hourglass_top:")
    rerun = experiments.result(*job)
    if rerun is not None:
        st.metric("The notebook after 10 runs of its cell", f"{rerun.test_accuracy:.1%}",
                  help="Test accuracy after 20,000 steps with the notebook's settings.")
        show_chart(st, tf.ladder_accuracy_figure(
            [(RERUN_KEY, "the notebook, 20,000 steps", rerun.val_steps, rerun.val_accuracy)]),
            key="rerun_accuracy")
        st.caption("Each run of the cell was 2,000 steps: the line stays flat near 10 % for several "
                   "runs, then climbs. Every extra run still helps, more and more slowly.")
    if polling and not experiments.busy:
        st.rerun()  # finished: re-enable the buttons, stop polling


rerun_view(experiments.busy)
