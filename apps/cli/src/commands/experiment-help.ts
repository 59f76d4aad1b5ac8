/** `sharelora experiment --help`. */
export const experimentHelp = `Usage: sharelora experiment run FILE [--cells LIST] [--dry-run] [--json] [--eval-shard K | --defer-shards]
       sharelora experiment submit FILE --slurm [--partition P] [--gpus-per-task N] [...]
       sharelora experiment submit FILE --emit k8s --image IMAGE [--pvc NAME --mount PATH]
       sharelora experiment report FILE [--json]

Runs a declared study: every cell of FILE's grid (models × datasets × methods × seeds) is trained
with 'sharelora train' and evaluated with 'sharelora eval', each in its own folder, and reported as
paper-style tables (mean ± standard deviation over seeds beside trainable parameters, optimizer
bytes, peak memory and time).

FILE (YAML or JSON; paths relative to it):
  name: my-study
  output: runs                 # default: <FILE name>-runs beside FILE
  models:                      # each: path: DIR | init: {arch, preset, seed} | import: {file, from, tokenizer}
    tiny: { init: { arch: llama, preset: tiny } }
  datasets:                    # train's --data, --format, --eval-data (eval), --validation, --labels;
    add: { train: add.jsonl, format: prompt-completion, eval: add-test.jsonl }
                               # also training (its own settings) and evaluations (its own runs)
  methods:                     # method, rank, alpha, dropout, targets, lr
    lora: { method: lora, rank: 8, alpha: 16 }
    share-a: { method: share-a, rank: 8, alpha: 16 }
  training: { steps: 200, batch-size: 8, lr: 0.001 }   # train's options by long flag name
  evaluations:                 # optional 'sharelora eval' runs per cell: task, data, other eval flags;
    - { task: gsm8k, data: test.jsonl, limit: 50, shards: 4 }   # shards: N runs of --shard I/N, merged
  seeds: [0, 1, 2]

Each cell has a stable id (a hash of its settings) and writes OUTPUT/cells/<id>/: cell.json (its
settings, state, versions, timings and figures), train/ (train's output) and eval-*.json. Models
built by init or import go to OUTPUT/models/<name>/ once.

run:
  Runs the cells in order, each in child processes. A complete cell is skipped; an interrupted one
  resumes from its last training checkpoint (set save-every); a failing one is recorded as failed
  with its error and the others go on. Ctrl-C or SIGTERM stops after the running step's checkpoint.
  --cells LIST   only these cells: ids, names (model/dataset/method/seed-N) or 0-based indices,
                 comma-separated (a scheduler's array index works as is)
  --dry-run      list the cells and their state, and estimate each one's time and peak memory from
                 a 2-step probe per model and method (in a temporary folder; nothing is written), or,
                 for a model folder with only its config.json, from that alone (no data needed)
  --eval-shard K only shard K of each sharded evaluation of a trained cell (a Slurm shard task)
  --defer-shards train and run the unsharded evaluations, leaving the sharded ones to shard tasks;
                 a later plain run merges the shards (eval-merge) and completes the cell
  --json         print one JSON document on stdout

submit:
  Scale-out on an existing scheduler: task i runs 'sharelora experiment run FILE --cells i'. The
  tasks share OUTPUT, so it must be on storage every node sees; models are built once here first.
  --slurm              write OUTPUT/slurm/<name>.sbatch (an array over the cells not complete) and
                       submit it with sbatch; logs go to OUTPUT/slurm/<job>_<task>.log. With sharded
                       evaluations, three jobs: the cells (--defer-shards), then one task per shard
                       (<name>-shards.sbatch), then the merge (<name>-merge.sbatch), each after the last
  --partition P, --gpus-per-task N, --cpus-per-task N, --mem M, --time T
                       the #SBATCH options of the same names
  --max-parallel K     most tasks (pods) running at once
  --sbatch-arg ARG     any other sbatch option, e.g. --sbatch-arg=--account=lab (repeatable)
  --command WORDS      how the nodes start sharelora (default: this node and this CLI's path)
  --cells LIST         submit only these cells
  --wait               wait for the job to finish (sbatch --wait); exit 1 if a task failed
  --dry-run            write the script without submitting it
  --emit k8s           write OUTPUT/k8s/<name>-job.yaml: a Kubernetes Indexed Job (batch/v1), pod i
                       runs cell i, each cell retried once; apply it with kubectl
  --image IMAGE        (k8s) a container image with node and sharelora on its PATH
  --pvc NAME, --mount PATH
                       (k8s) a PersistentVolumeClaim holding the experiment, mounted at PATH
  --gpus-per-task N    (k8s) nvidia.com/gpu per pod

report:
  Writes OUTPUT/report/report.md, report.csv, report.json and report.html (the tables, quality against
  trainable parameters and the loss curves per method) from the cells' records and prints the
  Markdown (or, with --json, the JSON). Cells still running or not run are listed as pending.

Exit codes: 0 done (run: every selected cell complete), 1 a cell failed, 2 bad usage or a bad FILE.
  -h, --help     show this help`;
