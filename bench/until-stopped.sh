#!/bin/sh
# until-stopped.sh RUNTIME... state ID: waits until that command says the
# container stopped, so that a timed `delete` (without --force) never
# meets a container whose /bin/true is still exiting.
id=$(eval echo \${$#})
i=0
while ! "$@" 2>/dev/null | grep -q '"status": *"stopped"'; do
  i=$((i + 1))
  [ $i -lt 1000 ] || { echo "until-stopped.sh: $id never stopped" >&2; exit 1; }
done
