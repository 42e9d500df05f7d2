# Developer tasks for the dashboards, rules and deployment files.
PYTHON ?= .venv/bin/python
PROMTOOL ?= promtool
AMTOOL ?= amtool
HADOLINT ?= $(if $(wildcard .venv/bin/hadolint),.venv/bin/hadolint,hadolint)

.PHONY: dashboards prometheusrule constraints generate rules-test alertmanager-check lint-docker check

## dashboards: regenerate grafana/dashboards/*.json from grafana/generate.py
dashboards:
	$(PYTHON) -m grafana.generate

## prometheusrule: regenerate deploy/kubernetes/base/prometheusrule.yaml from prometheus/rules/
prometheusrule:
	$(PYTHON) deploy/kubernetes/generate_prometheusrule.py

## constraints: pin the image's runtime dependencies (constraints.txt) to this environment's
constraints:
	$(PYTHON) scripts/constraints.py

generate: dashboards prometheusrule

## rules-test: promtool check + unit tests of the alerting and recording rules
rules-test:
	$(PROMTOOL) check rules prometheus/rules/*.yml
	$(PROMTOOL) test rules prometheus/tests/*.yml
	$(PROMTOOL) check config prometheus/prometheus.yml
	$(PROMTOOL) check config deploy/compose/prometheus.yml

## alertmanager-check: amtool check-config of the example and compose configs
alertmanager-check:
	$(AMTOOL) check-config prometheus/alertmanager.yml deploy/compose/alertmanager.yml

## lint-docker: hadolint the Dockerfile
lint-docker:
	$(HADOLINT) --config .hadolint.yaml Dockerfile

check: rules-test alertmanager-check lint-docker
	$(PYTHON) -m pytest tests/e2e/test_dashboards.py tests/e2e/test_rules.py tests/e2e/test_deploy.py
