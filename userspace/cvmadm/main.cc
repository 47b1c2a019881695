// cvmadm: the CVM command line. The verbs live in actions/, one per file.
#include "shell.h"

int main(int argc, char** argv) {
  cvm::adm::Shell shell;
  return shell.Run(argc, argv);
}
