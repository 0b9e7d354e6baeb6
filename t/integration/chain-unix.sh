#!/bin/sh
exec "$(dirname "$0")/chain.sh" unix
