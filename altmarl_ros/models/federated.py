"""The paper's second application: federated optimisation as a mean-field game.

A parameter server is the global agent; n homogeneous clients are the local agents.
Each round the server picks its next aggregation mode (the step size it applies to the
uploaded updates, or a broadcast round that resynchronises clients); each client picks
whether to idle, train locally, or upload its update.

The server sees only k clients per round (their count vector over client states), which
is the communication constraint of ALTERNATING-MARL: polling every client's status costs
bandwidth, polling k does not.

States, actions and the trade-off the game encodes (docs/results.md, "federated model"):

- server state s_g = mode in force this round: BROADCAST (push the current global model,
  no aggregation), AGGREGATE_SMALL (apply uploads with a small server step size),
  AGGREGATE_LARGE (large step size). Action a_g = mode requested for the next round;
  reconfiguring takes effect with probability `switch_prob`, else the mode stays.
- client state s_l: STALE (holds an outdated global model), SYNCED (holds the current
  model, no local work yet), TRAINED (holds a local update ready to upload), OFFLINE
  (dropped out: battery, network). Client action a_l: IDLE, TRAIN, UPLOAD.
- Aggregation moves the global model, so clients' copies go stale (faster with the large
  step); a broadcast round resynchronises stale clients but makes no progress. Only
  fresh uploads during aggregation make progress; a stale upload harms it, more so under
  the large step. So the server's best mode depends on the population: broadcast when
  many clients are stale, large steps when many hold fresh updates. That dependence on
  the count vector is what makes k matter.

Reward = global progress per round (loss decrease; one fresh update applied with the small
step is worth 2, with the large step 3, a stale one costs 0.5 / 2) minus compute and
communication costs; the server pays for its broadcast bandwidth and for switching modes.
"""
import numpy as np

from altmarl_ros.core.atomic import write_atomic
from altmarl_ros.core.model import ModelError, make_game, model_yaml_text

SERVER_MODES = ("broadcast", "aggregate_small", "aggregate_large")
CLIENT_STATES = ("stale", "synced", "trained", "offline")
CLIENT_ACTIONS = ("idle", "train", "upload")

BROADCAST, AGG_SMALL, AGG_LARGE = range(3)
STALE, SYNCED, TRAINED, OFFLINE = range(4)
IDLE, TRAIN, UPLOAD = range(3)


def federated_game(
    *,
    gamma=0.95,
    switch_prob=0.85,
    dropout_prob=0.03,
    rejoin_prob=0.3,
    resync_prob=0.9,
    train_success_prob=0.8,
    upload_success_prob=0.9,
    drift_prob=(0.0, 0.1, 0.3),
    fresh_gain=(0.0, 2.0, 3.0),
    stale_harm=(0.0, 0.5, 2.0),
    train_cost=0.15,
    upload_cost=0.2,
    broadcast_cost=0.3,
    aggregate_cost=0.1,
    switch_cost=0.05,
):
    """Build the federated-optimisation MeanFieldGame (3 server modes, 4 client states).

    Per-mode tuples are indexed by SERVER_MODES. Defaults are the shipped
    config/models/federated.yaml; an episode starts in BROADCAST with all clients STALE
    (no client holds the model yet).
    """
    n_sg, n_sl, n_al = len(SERVER_MODES), len(CLIENT_STATES), len(CLIENT_ACTIONS)
    probabilities = dict(switch_prob=switch_prob, dropout_prob=dropout_prob,
                         rejoin_prob=rejoin_prob, resync_prob=resync_prob,
                         train_success_prob=train_success_prob,
                         upload_success_prob=upload_success_prob)
    for name, value in probabilities.items():
        if not 0.0 <= value <= 1.0:
            raise ModelError(f"federated_game({name}={value!r}): a probability must lie in [0, 1]")
    per_mode = dict(drift_prob=drift_prob, fresh_gain=fresh_gain, stale_harm=stale_harm)
    for name, value in per_mode.items():
        if np.shape(value) != (n_sg,):
            raise ModelError(f"federated_game({name}=...): give one value per server mode {SERVER_MODES}")
    drift = np.asarray(drift_prob, dtype=np.float64)
    if not ((drift >= 0.0) & (drift <= 1.0)).all():
        raise ModelError(f"federated_game(drift_prob={drift_prob!r}): probabilities must lie in [0, 1]")
    gain = np.asarray(fresh_gain, dtype=np.float64)
    harm = np.asarray(stale_harm, dtype=np.float64)

    # Server: requested mode takes effect with switch_prob, otherwise the old mode stays.
    P_g = np.zeros((n_sg, n_sg, n_sg))
    r_g = np.zeros((n_sg, n_sg))
    for s in range(n_sg):
        for a in range(n_sg):
            P_g[s, a, a] += switch_prob
            P_g[s, a, s] += 1.0 - switch_prob
            r_g[s, a] = -(broadcast_cost if s == BROADCAST else aggregate_cost)
            if a != s:
                r_g[s, a] -= switch_cost

    P_l = np.zeros((n_sl, n_sg, n_al, n_sl))
    r_l = np.zeros((n_sl, n_sg, n_al))
    action_cost = np.array([0.0, train_cost, upload_cost])
    for g in range(n_sg):
        aggregating = g != BROADCAST
        for a in range(n_al):
            # An offline client ignores its action and rejoins stale (it missed rounds).
            P_l[OFFLINE, g, a, STALE] = rejoin_prob
            P_l[OFFLINE, g, a, OFFLINE] = 1.0 - rejoin_prob

            online = 1.0 - dropout_prob
            for s in (STALE, SYNCED, TRAINED):
                P_l[s, g, a, OFFLINE] = dropout_prob
                r_l[s, g, a] = -action_cost[a]

            # Stale: only a broadcast round brings the current model.
            if g == BROADCAST:
                P_l[STALE, g, a, SYNCED] += online * resync_prob
                P_l[STALE, g, a, STALE] += online * (1.0 - resync_prob)
            else:
                P_l[STALE, g, a, STALE] += online
            if a == UPLOAD and aggregating:
                r_l[STALE, g, a] -= harm[g]

            # Synced: aggregation moves the global model under it with drift[g];
            # otherwise training produces an update with train_success_prob.
            p_train = train_success_prob if a == TRAIN else 0.0
            P_l[SYNCED, g, a, STALE] += online * drift[g]
            P_l[SYNCED, g, a, TRAINED] += online * (1.0 - drift[g]) * p_train
            P_l[SYNCED, g, a, SYNCED] += online * (1.0 - drift[g]) * (1.0 - p_train)

            # Trained: an upload during aggregation is applied (progress) and the reply
            # carries the new model; otherwise the update ages and goes stale with drift[g].
            if a == UPLOAD and aggregating:
                delivered = upload_success_prob
                P_l[TRAINED, g, a, SYNCED] += online * delivered
                rest = online * (1.0 - delivered)
                r_l[TRAINED, g, a] += delivered * gain[g]
            else:
                rest = online
            P_l[TRAINED, g, a, STALE] += rest * drift[g]
            P_l[TRAINED, g, a, TRAINED] += rest * (1.0 - drift[g])

    mu0_g = np.zeros(n_sg)
    mu0_g[BROADCAST] = 1.0
    mu0_l = np.zeros(n_sl)
    mu0_l[STALE] = 1.0
    # Rounded so the shipped YAML reads 0.15, not 0.15000000000000002 (rows still sum to 1).
    P_g, P_l, r_g, r_l = (np.round(array, 12) for array in (P_g, P_l, r_g, r_l))
    return make_game(P_g=P_g, P_l=P_l, r_g=r_g, r_l=r_l, gamma=gamma, mu0_g=mu0_g, mu0_l=mu0_l,
                     name="federated", description=DESCRIPTION)


DESCRIPTION = (
    "Federated optimisation (Anand & Karmarkar's second application): server modes "
    f"{list(SERVER_MODES)}, client states {list(CLIENT_STATES)}, client actions "
    f"{list(CLIENT_ACTIONS)}; built by altmarl_ros.models.federated.federated_game()"
)


def write_shipped_model(path):
    """Regenerate config/models/federated.yaml from the builder's defaults."""
    game = federated_game()
    header = ("Generated by `python -m altmarl_ros.models.federated config/models/federated.yaml`;\n"
              "edit the builder, not this file. Meaning of every state, action and reward:\n"
              "docs/results.md, section 'The federated-optimisation model'.")
    write_atomic(path, model_yaml_text(game, header=header))


if __name__ == "__main__":
    import sys

    write_shipped_model(sys.argv[1])
