/* A rank that joins an MPI job and then waits for ever without reaching any collective: the peer
   that hangs (deadlocked, or another program started by an MPMD launch), for the tests that a
   signal to qkv still ends the job. */
#include <mpi.h>
#include <unistd.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  for (;;) pause();
}
