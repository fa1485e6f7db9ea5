# Stdout callback of github.com/masonops/mason/ansible. It replaces
# Ansible's screen output: the play's variables arrive on a file
# descriptor (never a file, the command line or the environment) and are
# set as extra variables, marked unsafe so that no value is templated; what
# happens is written as JSON lines to another descriptor for the mason
# role (task results, the facts and registered values it asked for, the
# recap). Written into a private temporary directory by the role; not meant
# to be used on its own.
from __future__ import annotations

DOCUMENTATION = '''
name: mason
type: stdout
short_description: report a play to the mason role that runs it
description:
  - Receives the play's variables from the mason role and reports results back.
author: mason
options: {}
'''

import json
import os

from ansible.plugins.callback import CallbackBase
from ansible.utils.unsafe_proxy import wrap_var

_SKIP = ('_ansible_no_log', '_ansible_verbose_always', '_ansible_verbose_override', 'invocation')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'mason'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._vars = None
        fd = os.environ.get('MASON_ANSIBLE_VARS_FD')
        if fd:
            with os.fdopen(int(fd), 'rb') as f:
                self._vars = json.loads(f.read().decode('utf-8'))
        out = os.environ.get('MASON_ANSIBLE_EVENTS_FD')
        self._out = os.fdopen(int(out), 'w', buffering=1) if out else None
        wanted = os.environ.get('MASON_ANSIBLE_OUTPUTS', '')
        self._wanted = set(w for w in wanted.split(',') if w)

    def _emit(self, **event):
        if self._out is not None:
            self._out.write(json.dumps(event, default=str) + '\n')

    def v2_playbook_on_start(self, playbook):
        if not self._vars:
            return
        for play in playbook.get_plays():
            vm = play.get_variable_manager()
            if vm is not None:
                vm.extra_vars.update(wrap_var(self._vars))
                break

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit(event='start', task=task.get_name())

    def _result(self, status, result, ignored=False):
        task = result._task
        r = result._result
        ev = {'event': 'task', 'task': task.get_name(), 'host': result._host.get_name(), 'status': status, 'ignored': ignored}
        if status in ('failed', 'unreachable'):
            ev['msg'] = r.get('msg', '')
            for k in ('stderr', 'stdout', 'module_stderr', 'module_stdout'):
                if r.get(k):
                    ev[k] = r[k][-2000:]
            if r.get('rc') is not None:
                ev['rc'] = r['rc']
        self._emit(**ev)
        if status in ('ok', 'changed'):
            facts = r.get('ansible_facts') if task.action in ('set_fact', 'ansible.builtin.set_fact', 'ansible.legacy.set_fact') else None
            for k, v in (facts or {}).items():
                if k in self._wanted:
                    self._emit(event='output', host=ev['host'], name=k, value=v)
        if task.register and task.register in self._wanted:
            self._emit(event='output', host=ev['host'], name=task.register,
                       value={k: v for k, v in r.items() if k not in _SKIP})

    def v2_runner_on_ok(self, result):
        self._result('changed' if result._result.get('changed') else 'ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result('failed', result, ignored=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._result('unreachable', result)

    def v2_runner_on_skipped(self, result):
        self._result('skipped', result)

    def v2_runner_item_on_failed(self, result):
        pass  # the loop's task result reports the failure

    def v2_playbook_on_stats(self, stats):
        for h in sorted(stats.processed.keys()):
            s = stats.summarize(h)
            self._emit(event='stats', host=h, recap=s)
