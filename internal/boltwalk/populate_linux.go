package boltwalk

import "syscall"

const populate = syscall.MAP_POPULATE
