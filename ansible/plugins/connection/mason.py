# Connection plugin of github.com/masonops/mason/ansible: every command and
# file transfer of a play goes through the mason node's own transport (the
# lab's nsenter, the ssh provider's verified, shared connection), reached
# over a Unix socket that the mason role serves for the length of one
# ansible-playbook run. Written into a private temporary directory by the
# role; not meant to be used on its own.
from __future__ import annotations

DOCUMENTATION = '''
name: mason
short_description: run tasks through the transport of a mason node
description:
  - Sends commands and files to the mason role that started ansible-playbook,
    which runs them on the node through the node's provider transport.
author: mason
options: {}
'''

import base64
import json
import os
import socket

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):
    transport = 'mason'
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sock = None
        self._io = None

    def _connect(self):
        if self._connected:
            return self
        path = os.environ.get('MASON_ANSIBLE_SOCKET')
        if not path:
            raise AnsibleConnectionFailure('mason: MASON_ANSIBLE_SOCKET is not set: this connection only works under a mason role')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError as e:
            raise AnsibleConnectionFailure('mason: cannot reach the mason role at %s: %s' % (path, e))
        self._sock = s
        self._io = s.makefile('rwb')
        self._connected = True
        return self

    def _call(self, req):
        self._connect()
        self._io.write(to_bytes(json.dumps(req)) + b'\n')
        self._io.flush()
        line = self._io.readline()
        if not line:
            raise AnsibleConnectionFailure('mason: the mason role closed the connection')
        resp = json.loads(line)
        if resp.get('error'):
            if resp.get('missing'):
                raise AnsibleError('mason: %s' % resp['error'])
            raise AnsibleConnectionFailure('mason: %s' % resp['error'])
        return resp

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        req = {'op': 'exec', 'cmd': to_text(cmd)}
        if in_data is not None:
            req['stdin'] = to_text(base64.b64encode(to_bytes(in_data)))
        resp = self._call(req)
        return resp['rc'], base64.b64decode(resp.get('stdout', '')), base64.b64decode(resp.get('stderr', ''))

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(to_bytes(in_path), 'rb') as f:
            data = f.read()
        self._call({'op': 'put', 'path': to_text(out_path), 'data': to_text(base64.b64encode(data))})

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        resp = self._call({'op': 'get', 'path': to_text(in_path)})
        with open(to_bytes(out_path), 'wb') as f:
            f.write(base64.b64decode(resp.get('data', '')))

    def reset(self):
        self.close()

    def close(self):
        if self._io is not None:
            try:
                self._io.close()
                self._sock.close()
            except OSError:
                pass
        self._io = None
        self._sock = None
        self._connected = False
