# Every target installs what it needs first. VENV may be overridden.
VENV ?= .venv
PY := $(VENV)/bin/python
LOOP := $(VENV)/bin/loop
STAMP := $(VENV)/.installed
# OpenLLMetry (traceloop-sdk) pins instrumentations of its own: its test emitter lives in its own virtualenv.
TRACELOOP_VENV ?= .venv-traceloop
TRACELOOP_STAMP := $(TRACELOOP_VENV)/.installed
DEMO_DIR ?= .demo
DEMO_SINCE ?= 2026-11-01

.PHONY: install test demo demo-model improve apply bench template clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(TRACELOOP_STAMP): tests/traceloop-requirements.txt
	python3 -m venv $(TRACELOOP_VENV)
	$(TRACELOOP_VENV)/bin/python -m pip install --quiet -r tests/traceloop-requirements.txt
	touch $(TRACELOOP_STAMP)

test: $(STAMP) $(TRACELOOP_STAMP)
	LOOP_TEST_TRACELOOP=$(abspath $(TRACELOOP_VENV))/bin/python $(PY) -m pytest -n 2

# The demo works on a copy of examples/: the agent drafts new tickets, the judge pre-scores them,
# the improver proposes edits from the reviewed drafts (and, with --include-judge, the judged ones),
# and the report measures each prompt version and applied edit on the Dashboard tab.
# The model is checked first, so a missing one is said before a minute of installing; the install
# runs inside the recipe, after the check, even under `make -j`.
demo: demo-model
	@$(MAKE) --no-print-directory -s install
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	cp -r examples/prompts examples/kb examples/loop.xlsx examples/tickets.jsonl $(DEMO_DIR)/
	rm -f $(DEMO_DIR)/kb/.kb-index.sqlite
	cd $(DEMO_DIR) && $(abspath $(LOOP)) draft --tickets tickets.jsonl --kb kb
	cd $(DEMO_DIR) && $(abspath $(LOOP)) judge
	cd $(DEMO_DIR) && $(abspath $(LOOP)) improve --since $(DEMO_SINCE) --include-judge
	cd $(DEMO_DIR) && $(abspath $(LOOP)) report
	@echo "Tick edits in $(DEMO_DIR)/loop.xlsx, then: cd $(DEMO_DIR) && $(abspath $(LOOP)) apply"

demo-model:
	@if [ -z "$$OPENAI_API_KEY" ] && [ -z "$$OPENAI_BASE_URL" ]; then \
		echo "make demo needs a model: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server (Ollama: http://localhost:11434/v1) with LOOP_MODEL; nothing was installed." >&2; \
		exit 2; \
	fi

improve: $(STAMP)
	$(LOOP) improve

apply: $(STAMP)
	$(LOOP) apply

bench: $(STAMP)
	$(PY) benchmarks/bench_writes.py
	$(PY) benchmarks/bench_improve.py
	$(PY) benchmarks/bench_replay.py
	$(PY) benchmarks/bench_google.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_judge.py
	$(PY) benchmarks/bench_kb.py
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_canary.py
	$(PY) benchmarks/bench_prompt.py
	$(PY) benchmarks/bench_otlp.py

template: $(STAMP)
	$(PY) scripts/make_template.py sheets_template.xlsx

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
